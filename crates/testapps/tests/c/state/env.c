/* The environment: variables the program sets and changes (environ grows on the heap). */
#include "state.h"

extern char **environ;

int main(int argc, char **argv) {
    state_args(argc, argv);
    setenv("STATE_FIXED", "kept", 1);
    for (int i = 0; i < steps; i++) {
        char name[32], value[32];
        snprintf(name, sizeof name, "STATE_VAR_%d", i);
        snprintf(value, sizeof value, "value-%d", i * i);
        setenv(name, value, 1);
        snprintf(value, sizeof value, "%d", i);
        setenv("STATE_STEP", value, 1);
        int ours = 0;
        unsigned long long h = FNV0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "STATE_", 6) == 0) {
                ours++;
                h ^= fnv(*e, strlen(*e), FNV0);
            }
        printf("step %d STATE_STEP=%s STATE_FIXED=%s variables %d sum %016llx\n", i,
               getenv("STATE_STEP"), getenv("STATE_FIXED"), ours, h);
        pause_step();
    }
    printf("result %s\n", getenv("STATE_VAR_0"));
    return 0;
}
