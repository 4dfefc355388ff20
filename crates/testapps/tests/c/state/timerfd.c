/* Timerfds: one on CLOCK_MONOTONIC with an hour's interval, one set to an absolute
 * CLOCK_REALTIME an hour ahead, one that expired once at the start and is read only at the
 * end (the expiration must still be counted after a restart), and a disarmed, non-blocking,
 * close-on-exec one. None fires during the run, so every step prints the same. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "state.h"

/* Whether the timer at fd has between 0 and an hour left and an interval of `interval` s. */
static const char *left_ok(int fd, long interval) {
    struct itimerspec now;
    if (timerfd_gettime(fd, &now) != 0)
        return "error";
    long left = now.it_value.tv_sec;
    int armed = now.it_value.tv_sec != 0 || now.it_value.tv_nsec != 0;
    return armed && left >= 0 && left < 3600 && now.it_interval.tv_sec == interval &&
                   now.it_interval.tv_nsec == 0
               ? "ok"
               : "WRONG";
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    int hour = timerfd_create(CLOCK_MONOTONIC, 0);
    int wall = timerfd_create(CLOCK_REALTIME, 0);
    int fired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int idle = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (hour < 0 || wall < 0 || fired < 0 || idle < 0)
        return 3;
    struct itimerspec h = {{3600, 0}, {3600, 0}};
    struct itimerspec once = {{0, 0}, {0, 1000000}};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec at = {{0, 0}, {now.tv_sec + 3599, now.tv_nsec}};
    if (timerfd_settime(hour, 0, &h, NULL) != 0 ||
        timerfd_settime(wall, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &at, NULL) != 0 ||
        timerfd_settime(fired, 0, &once, NULL) != 0)
        return 4;
    /* Wait for the one expiration without reading it. */
    struct pollfd p = {fired, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1)
        return 5;
    for (int i = 0; i < steps; i++) {
        struct pollfd q[2] = {{fired, POLLIN, 0}, {idle, POLLIN, 0}};
        int ready = poll(q, 2, 0);
        struct itimerspec off;
        timerfd_gettime(idle, &off);
        printf("step %d hour %s wall %s fired %s idle %s ready %d nonblock %s cloexec %s\n", i,
               left_ok(hour, 3600), left_ok(wall, 0), q[0].revents & POLLIN ? "pending" : "none",
               off.it_value.tv_sec == 0 && off.it_value.tv_nsec == 0 ? "disarmed" : "ARMED", ready,
               fcntl(idle, F_GETFL) & O_NONBLOCK ? "yes" : "no",
               fcntl(idle, F_GETFD) & FD_CLOEXEC ? "yes" : "no");
        pause_step();
    }
    uint64_t n = 0;
    int got = (int)read(fired, &n, sizeof n);
    errno = 0;
    int none = (int)read(idle, &n, sizeof n);
    printf("result %d steps, fired read %d expirations %llu, idle read %d %s\n", steps, got,
           (unsigned long long)n, none, errno == EAGAIN ? "EAGAIN" : "other");
    return 0;
}
