/* A program that forks: each step's child exits through exit() (so the preloaded runtime's
 * exit hook runs in it too) and the parent reaps it. The children must neither answer for the
 * rank nor tell the coordinator that it exits. */
#include <sys/wait.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    unsigned long long h = FNV0;
    for (int i = 0; i < steps; i++) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0)
            exit(i % 7);
        int status = -1;
        while (waitpid(child, &status, 0) == -1 && errno == EINTR) {
        }
        h = fnv(&status, sizeof status, h);
        printf("step %d child exited with %d\n", i, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        pause_step();
    }
    printf("result %016llx\n", h);
    return 0;
}
