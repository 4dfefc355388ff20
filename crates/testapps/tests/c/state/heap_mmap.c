/* malloc'd blocks large enough for glibc to mmap each (above M_MMAP_THRESHOLD). */
#include "state.h"

#define LIVE 8

int main(int argc, char **argv) {
    state_args(argc, argv);
    unsigned char *blocks[LIVE] = {0};
    size_t lens[LIVE] = {0};
    for (int i = 0; i < steps; i++) {
        int slot = i % LIVE;
        free(blocks[slot]);
        lens[slot] = (256u << 10) + (size_t)(i % 5) * 4096 + 123;
        blocks[slot] = malloc(lens[slot]);
        for (size_t b = 0; b < lens[slot]; b++)
            blocks[slot][b] = (unsigned char)(b * 31 + (size_t)i);
        unsigned long long h = FNV0;
        for (int k = 0; k < LIVE; k++)
            if (blocks[k])
                h = fnv(blocks[k], lens[k], h);
        printf("step %d sum %016llx\n", i, h);
        pause_step();
    }
    unsigned long long h = FNV0;
    for (int k = 0; k < LIVE; k++)
        if (blocks[k])
            h = fnv(blocks[k], lens[k], h);
    printf("result %016llx\n", h);
    return 0;
}
