/* Socketpairs: a unix stream pair with a non-blocking end and a duplicate of the other end;
 * each step sends two numbered lines one way and one the other way, and reads one line at
 * each end, so both directions hold more bytes after every step: a checkpoint always finds
 * bytes waiting. A second pair's one end wrote "bye" and shut down its writing at the start;
 * the other end reads it at the end, then the end of file. After a restart both pairs must
 * hold what they held, with the same ends, mode and shutdowns, and no other end open (the
 * end of file of the first pair must come once its writers are closed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "state.h"

#define LINE 10 /* "line 0000\n" */

static int take(int fd, char *got) {
    int n = (int)read(fd, got, LINE);
    got[n == LINE ? LINE - 1 : 0] = '\0';
    return n;
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    int sv[2], bye[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bye) != 0)
        return 3;
    int dup1 = dup(sv[1]);
    if (dup1 < 0 || fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
        return 3;
    if (write(bye[0], "bye\n", 4) != 4 || shutdown(bye[0], SHUT_WR) != 0)
        return 3;
    for (int i = 0; i < steps; i++) {
        char line[LINE + 1], a[LINE + 1], b[LINE + 1];
        snprintf(line, sizeof line, "line %04d\n", 2 * i);
        int wrote = (int)write(sv[1], line, LINE);
        snprintf(line, sizeof line, "line %04d\n", 2 * i + 1);
        wrote += (int)write(dup1, line, LINE);
        snprintf(line, sizeof line, "back %04d\n", i);
        wrote += (int)write(sv[0], line, LINE);
        int n0 = take(sv[0], a);
        int n1 = take(sv[1], b);
        printf("step %d wrote %d read %d [%s] %d [%s] nonblock %s %s\n", i, wrote, n0, a, n1, b,
               fcntl(sv[0], F_GETFL) & O_NONBLOCK ? "yes" : "no",
               fcntl(dup1, F_GETFL) & O_NONBLOCK ? "yes" : "no");
        pause_step();
    }
    /* Close the writers of the first direction and read what is left, to the end of file. */
    close(sv[1]);
    close(dup1);
    unsigned long long h = FNV0;
    long left = 0;
    char buf[256];
    fcntl(sv[0], F_SETFL, 0);
    for (ssize_t n; (n = read(sv[0], buf, sizeof buf)) > 0; left += n)
        h = fnv(buf, (size_t)n, h);
    char tail[16] = "";
    ssize_t nb = read(bye[1], tail, sizeof tail - 1);
    ssize_t eof = read(bye[1], buf, sizeof buf);
    int sent = (int)send(bye[0], "x", 1, MSG_NOSIGNAL);
    printf("result %d steps, %ld bytes left hash %llx, bye %zd [%.3s] then %zd, send after "
           "shutdown %d %s\n",
           steps, left, h, nb, tail, eof, sent, sent < 0 && errno == EPIPE ? "EPIPE" : "?");
    return 0;
}
