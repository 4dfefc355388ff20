/* Installed signal handlers, a blocked signal and a pending one. */
#include <signal.h>
#include "state.h"

static volatile sig_atomic_t usr1, usr2;

static void on_usr1(int sig, siginfo_t *info, void *ctx) {
    (void)sig, (void)info, (void)ctx;
    usr1++;
}

static void on_usr2(int sig) {
    (void)sig;
    usr2++;
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    struct sigaction a = {0};
    a.sa_sigaction = on_usr1;
    a.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&a.sa_mask);
    sigaddset(&a.sa_mask, SIGTERM);
    sigaction(SIGUSR1, &a, NULL);
    signal(SIGUSR2, on_usr2);
    signal(SIGHUP, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR2);
    for (int i = 0; i < steps; i++) {
        raise(SIGUSR1);
        raise(SIGHUP);
        struct sigaction now;
        sigaction(SIGUSR1, NULL, &now);
        sigset_t mask, pending;
        sigprocmask(SIG_BLOCK, NULL, &mask);
        sigpending(&pending);
        printf("step %d usr1 %d handler %s masks term %s usr2 blocked %s pending %s\n", i,
               (int)usr1, now.sa_sigaction == on_usr1 ? "ours" : "lost",
               sigismember(&now.sa_mask, SIGTERM) ? "yes" : "no",
               sigismember(&mask, SIGUSR2) ? "yes" : "no",
               sigismember(&pending, SIGUSR2) ? "yes" : "no");
        pause_step();
    }
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("result usr1 %d usr2 %d\n", (int)usr1, (int)usr2);
    return 0;
}
