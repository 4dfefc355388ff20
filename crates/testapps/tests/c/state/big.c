/* 1 GiB of state: every page holds a pattern; each step sums one slice, the end all of it. */
#include <stdint.h>
#include "state.h"

#define SIZE (1ULL << 30)

int main(int argc, char **argv) {
    state_args(argc, argv);
    uint64_t *mem = malloc(SIZE);
    if (!mem)
        return 3;
    size_t words = SIZE / sizeof *mem;
    for (size_t w = 0; w < words; w++)
        mem[w] = w * 0x9E3779B97F4A7C15ULL;
    size_t slice = words / (size_t)steps;
    for (int i = 0; i < steps; i++) {
        uint64_t h = 0;
        for (size_t w = (size_t)i * slice; w < (size_t)(i + 1) * slice; w++)
            h = (h ^ mem[w]) * 31;
        mem[(size_t)i * slice] ^= h;
        printf("step %d slice %016llx\n", i, (unsigned long long)h);
        pause_step();
    }
    uint64_t h = 0;
    for (size_t w = 0; w < words; w++)
        h = (h ^ mem[w]) * 31;
    printf("result %016llx\n", (unsigned long long)h);
    return 0;
}
