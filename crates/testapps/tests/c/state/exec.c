/* A program that executes itself twice, first with execv, then with execlp: the rank's control
 * connection is handed over at each exec, and a checkpoint may land in any of the three
 * stages. What carries over is in the arguments (the stage and the running sum); stdout is
 * flushed before each exec, as a program must (its buffer does not survive the exec). Stage 0
 * first fails to execute a missing program, which must leave it the rank.
 *
 * Usage: exec STEPS SLOW_MS DIR [STAGE SUM]; stage k prints steps k*(STEPS/3) up to
 * (k+1)*(STEPS/3) - 1. */
#include <unistd.h>

#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    if (argc < 4) {
        fprintf(stderr, "usage: %s STEPS SLOW_MS DIR [STAGE SUM]\n", argv[0]);
        return 2;
    }
    int stage = argc > 5 ? atoi(argv[4]) : 0;
    unsigned long long h = argc > 5 ? strtoull(argv[5], NULL, 16) : FNV0;
    if (stage == 0) {
        /* A failed exec keeps the rank's connection (and errno). */
        char *const missing[] = {"mpicr-no-such-program", NULL};
        execv("/nonexistent/mpicr-no-such-program", missing);
        printf("a missing program is not executed: %s\n", errno == ENOENT ? "ENOENT" : "?");
    }
    int per = steps / 3;
    for (int i = stage * per; i < (stage + 1) * per; i++) {
        h = fnv(&i, sizeof i, h);
        printf("stage %d step %d sum %016llx\n", stage, i, h);
        pause_step();
    }
    if (stage == 2) {
        printf("result %016llx\n", h);
        return 0;
    }
    char next[16], sum[32];
    snprintf(next, sizeof next, "%d", stage + 1);
    snprintf(sum, sizeof sum, "%016llx", h);
    fflush(stdout);
    if (stage == 0) {
        char *const args[] = {argv[0], argv[1], argv[2], argv[3], next, sum, NULL};
        execv("/proc/self/exe", args);
    } else {
        execlp(argv[0], argv[0], argv[1], argv[2], argv[3], next, sum, (char *)NULL);
    }
    perror("exec");
    return 1;
}
