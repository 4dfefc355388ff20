/* What the checkpointed test programs share: the checksum step and the pause that slows a run
 * down so that a checkpoint asked from outside finds it still running. */
#include <stdint.h>
#include <time.h>

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 5) | (acc >> 59);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

static void pause_ms(long ms) {
    if (ms > 0) {
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
}
