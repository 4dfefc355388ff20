/* Resource limits the program lowered (soft and hard). */
#include <sys/resource.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    struct rlimit files, core = {0, 0};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = 123;
    setrlimit(RLIMIT_NOFILE, &files);
    setrlimit(RLIMIT_CORE, &core);
    struct rlimit data = {1ULL << 40, 1ULL << 41};
    setrlimit(RLIMIT_DATA, &data);
    for (int i = 0; i < steps; i++) {
        getrlimit(RLIMIT_NOFILE, &files);
        getrlimit(RLIMIT_CORE, &core);
        getrlimit(RLIMIT_DATA, &data);
        printf("step %d nofile %llu core %llu/%llu data %llu/%llu\n", i,
               (unsigned long long)files.rlim_cur, (unsigned long long)core.rlim_cur,
               (unsigned long long)core.rlim_max, (unsigned long long)data.rlim_cur,
               (unsigned long long)data.rlim_max);
        pause_step();
    }
    printf("result %d steps\n", steps);
    return 0;
}
