/* A self-pipe (both ends in the process): a non-blocking read end and a write end with a
 * duplicate, its capacity set to 8 KiB. Each step writes two numbered lines, one through each
 * write end, and reads one back, so the pipe holds more lines after every step: a checkpoint
 * always finds bytes in it. After a restart the pipe must hold what it held, with the same
 * ends, mode and capacity, and no other write end (the end of file must come). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "state.h"

#define LINE 10 /* "line 0000\n" */

int main(int argc, char **argv) {
    state_args(argc, argv);
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        return 3;
    int w2 = dup(p[1]);
    if (w2 < 0 || fcntl(p[0], F_SETPIPE_SZ, 8192) < 0)
        return 3;
    for (int i = 0; i < steps; i++) {
        char line[LINE + 1];
        snprintf(line, sizeof line, "line %04d\n", 2 * i);
        int wrote = (int)write(p[1], line, LINE);
        snprintf(line, sizeof line, "line %04d\n", 2 * i + 1);
        wrote += (int)write(w2, line, LINE);
        char got[LINE + 1] = "";
        int n = (int)read(p[0], got, LINE);
        got[n == LINE ? LINE - 1 : 0] = '\0';
        printf("step %d wrote %d read %d [%s] capacity %d nonblock %s\n", i, wrote, n, got,
               fcntl(p[0], F_GETPIPE_SZ), fcntl(p[0], F_GETFL) & O_NONBLOCK ? "yes" : "no");
        pause_step();
    }
    /* What is left, then EAGAIN while the write ends are open, then the end of file. */
    char rest[8192];
    int left = (int)read(p[0], rest, sizeof rest);
    unsigned long long h = fnv(rest, left > 0 ? (size_t)left : 0, FNV0);
    errno = 0;
    int again = read(p[0], rest, 1) == -1 && errno == EAGAIN;
    close(p[1]);
    close(w2);
    printf("result %d steps, %d bytes left (hash %016llx), then %s and %s\n", steps, left, h,
           again ? "EAGAIN" : "no EAGAIN", read(p[0], rest, 1) == 0 ? "end of file" : "no end of file");
    return 0;
}
