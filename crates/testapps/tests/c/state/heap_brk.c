/* malloc'd heap grown by brk: many small blocks, half of each step's freed again. */
#include <stdint.h>
#include <unistd.h>
#include "state.h"

#define PER_STEP 64

int main(int argc, char **argv) {
    state_args(argc, argv);
    char **blocks = calloc((size_t)steps * PER_STEP, sizeof *blocks);
    size_t *lens = calloc((size_t)steps * PER_STEP, sizeof *lens);
    void *start = sbrk(0);
    int n = 0;
    for (int i = 0; i < steps; i++) {
        for (int k = 0; k < PER_STEP; k++) {
            size_t len = 32 + (size_t)((i * PER_STEP + k) * 37 % 2000);
            blocks[n] = malloc(len);
            memset(blocks[n], (i * 7 + k) & 0xff, len);
            lens[n++] = len;
        }
        for (int k = n - PER_STEP; k < n; k += 2) {
            free(blocks[k]);
            blocks[k] = NULL;
        }
        unsigned long long h = FNV0;
        for (int k = 0; k < n; k++)
            if (blocks[k])
                h = fnv(blocks[k], lens[k], h);
        printf("step %d blocks %d sum %016llx heap grew %s\n", i, n / 2, h,
               (uintptr_t)sbrk(0) > (uintptr_t)start ? "yes" : "no");
        pause_step();
    }
    unsigned long long h = FNV0;
    for (int k = 0; k < n; k++)
        if (blocks[k])
            h = fnv(blocks[k], lens[k], h);
    printf("result %016llx\n", h);
    return 0;
}
