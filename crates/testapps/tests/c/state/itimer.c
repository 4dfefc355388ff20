/* An interval timer (setitimer ITIMER_REAL): each step waits for its next SIGALRM; a timer
 * that stopped firing ends the program with status 3 after 5000 sleeps of 1 ms. (Counted in
 * sleeps, not by the clock: CLOCK_MONOTONIC jumps by the time between checkpoint and restart.) */
#include <signal.h>
#include <sys/time.h>
#include "state.h"

static volatile sig_atomic_t ticks;

static void on_alarm(int sig) {
    (void)sig;
    ticks++;
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    struct sigaction a = {0};
    a.sa_handler = on_alarm;
    a.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &a, NULL);
    struct itimerval t = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &t, NULL);
    for (int i = 0; i < steps; i++) {
        int seen = ticks;
        int waited = 0;
        while (ticks == seen) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            if (++waited > 5000) {
                printf("step %d: the interval timer stopped firing\n", i);
                return 3;
            }
        }
        struct itimerval left;
        getitimer(ITIMER_REAL, &left);
        printf("step %d ticked, interval %ld us\n", i, (long)left.it_interval.tv_usec);
        pause_step();
    }
    printf("result %d steps ticked\n", steps);
    return 0;
}
