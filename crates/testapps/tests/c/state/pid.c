/* The process id: kept from the start and compared with getpid() and the thread id (which
 * glibc caches in the thread block) at every step, as programs that cache it do (Python's
 * asyncio ties its running loop to it). After a restart it must be the same, where the
 * restorer may choose pids (root). */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    pid_t pid = getpid();
    for (int i = 0; i < steps; i++) {
        int kept = getpid() == pid && (pid_t)syscall(SYS_gettid) == pid && gettid() == pid;
        printf("step %d pid kept %s\n", i, kept ? "yes" : "no");
        pause_step();
    }
    printf("result %d steps\n", steps);
    return 0;
}
