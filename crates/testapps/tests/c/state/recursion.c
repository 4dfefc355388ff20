/* Deep recursion: the steps run at the bottom of 12000 frames, each with its own bytes, which
 * are checked on the way back up. */
#include "state.h"

#define DEPTH 12000

static unsigned long long bottom(void) {
    unsigned long long h = FNV0;
    for (int i = 0; i < steps; i++) {
        h = fnv(&i, sizeof i, h);
        printf("step %d at depth %d sum %016llx\n", i, DEPTH, h);
        pause_step();
    }
    return h;
}

static unsigned long long dive(int depth) {
    volatile unsigned char pad[160];
    for (int b = 0; b < (int)sizeof pad; b++)
        pad[b] = (unsigned char)(depth * 13 + b);
    unsigned long long h = depth == DEPTH ? bottom() : dive(depth + 1);
    int intact = 1;
    for (int b = 0; b < (int)sizeof pad; b++)
        intact &= pad[b] == (unsigned char)(depth * 13 + b);
    return intact ? h * 31 + (unsigned long long)depth : 0;
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    printf("result %016llx\n", dive(1));
    return 0;
}
