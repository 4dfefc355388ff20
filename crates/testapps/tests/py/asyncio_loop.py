#!/usr/bin/env python3
"""An asyncio program for the image checkpointer: `asyncio_loop.py STEPS SLOW_MS DIR`.

The event loop's state is what a checkpoint must keep: an epoll instance, the self-pipe (a
socketpair) that call_soon_threadsafe writes to, timers, and the running loop tied to the
process id. A producer task puts numbered items on a queue every SLOW_MS milliseconds and
wakes the loop through its self-pipe; a consumer sums them; one line per step, printed into
a pipe without flushing (the buffer is part of the image), then "result ...".
"""

import asyncio
import sys


async def main(steps: int, slow_ms: int) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    woken = []

    async def producer() -> None:
        for i in range(steps):
            await queue.put(i)
            loop.call_soon_threadsafe(woken.append, i)
            await asyncio.sleep(slow_ms / 1000)
        await queue.put(None)

    task = loop.create_task(producer())
    total = 0
    while (item := await queue.get()) is not None:
        total += item * item
        print(f"step {item} total {total} woken {len(woken)}")
    await task
    print(f"result {steps} steps, total {total}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
