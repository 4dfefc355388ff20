/* A non-blocking signalfd for SIGUSR1 and SIGUSR2, both blocked: each even step raises
 * SIGUSR1, each odd step SIGUSR2 and then takes every pending signal from the signalfd, so a
 * checkpoint after an even step finds SIGUSR1 pending. After a restart the signalfd must
 * take the same signals, with the same one pending. */
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        return 3;
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    if (sfd < 0)
        return 3;
    int taken = 0;
    for (int i = 0; i < steps; i++) {
        raise(i % 2 == 0 ? SIGUSR1 : SIGUSR2);
        char got[64] = "";
        if (i % 2 == 1) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                size_t len = strlen(got);
                snprintf(got + len, sizeof got - len, " %s",
                         si.ssi_signo == SIGUSR1 ? "USR1" : si.ssi_signo == SIGUSR2 ? "USR2" : "?");
                taken++;
            }
        }
        sigset_t pending;
        sigpending(&pending);
        printf("step %d took [%s ] pending usr1 %d usr2 %d nonblock %s\n", i, got,
               sigismember(&pending, SIGUSR1), sigismember(&pending, SIGUSR2),
               fcntl(sfd, F_GETFL) & O_NONBLOCK ? "yes" : "no");
        pause_step();
    }
    printf("result %d steps, %d signals taken\n", steps, taken);
    return 0;
}
