/* An epoll instance watching an eventfd (level-triggered), the read end of a self-pipe
 * (edge-triggered), a timerfd that does not fire, and a second epoll instance, which watches
 * the eventfd one-shot and is re-armed every fourth step. The eventfd is written every step
 * and drained every other one, so a checkpoint may find it readable. Each step's work runs
 * with every signal blocked, so that a checkpoint lands between steps, never between an
 * edge and its drain (a restored edge-triggered watch of a ready file reports it once
 * more, as the kernel does not say whether it had been reported). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "state.h"

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* epoll_wait without waiting; the ready entries' data, sorted, into out. */
static void ready(int ep, char *out, size_t size) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, 0);
    uint64_t d[8];
    for (int i = 0; i < n; i++)
        d[i] = ev[i].data.u64;
    qsort(d, n < 0 ? 0 : (size_t)n, sizeof d[0], cmp);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, " %llx", (unsigned long long)d[i]);
    }
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    int efd = eventfd(0, EFD_NONBLOCK);
    int p[2];
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    int ep = epoll_create1(0), inner = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || pipe2(p, O_NONBLOCK) != 0 || tfd < 0 || ep < 0 || inner < 0)
        return 3;
    struct itimerspec h = {{0, 0}, {3600, 0}};
    timerfd_settime(tfd, 0, &h, NULL);
    struct epoll_event e1 = {EPOLLIN, {.u64 = 0x1111}};
    struct epoll_event e2 = {EPOLLIN | EPOLLET, {.u64 = 0x8000000000000002ULL}};
    struct epoll_event e3 = {EPOLLIN, {.u64 = 3}};
    struct epoll_event e4 = {EPOLLIN, {.u64 = 4}};
    struct epoll_event e5 = {EPOLLIN | EPOLLONESHOT, {.u64 = 5}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e1) || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e2) ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e3) || epoll_ctl(ep, EPOLL_CTL_ADD, inner, &e4) ||
        epoll_ctl(inner, EPOLL_CTL_ADD, efd, &e5))
        return 4;
    sigset_t all, old;
    sigfillset(&all);
    for (int i = 0; i < steps; i++) {
        sigprocmask(SIG_BLOCK, &all, &old);
        uint64_t one = 1, v;
        write(efd, &one, sizeof one);
        write(p[1], "ab", 2);
        char first[128], second[128], in[64];
        ready(ep, first, sizeof first);
        char c;
        int n1 = (int)read(p[0], &c, 1);
        /* Edge-triggered: the byte left in the pipe is no new edge. */
        ready(ep, second, sizeof second);
        int n2 = (int)read(p[0], &c, 1);
        ready(inner, in, sizeof in);
        int drained = i % 2 == 1 ? (int)read(efd, &v, sizeof v) : 0;
        if (i % 4 == 3)
            epoll_ctl(inner, EPOLL_CTL_MOD, efd, &e5);
        printf("step %d first [%s ] second [%s ] inner [%s ] pipe %d %d drained %d\n", i, first,
               second, in, n1, n2, drained);
        sigprocmask(SIG_SETMASK, &old, NULL);
        pause_step();
    }
    printf("result %d steps\n", steps);
    return 0;
}
