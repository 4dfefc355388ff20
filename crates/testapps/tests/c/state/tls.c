/* Thread-local variables (__thread): the thread pointer and the TLS block, and errno. */
#include "state.h"

static __thread unsigned long long counter = 7;
static __thread char text[64] = "tls";
static __thread int zeroed;

int main(int argc, char **argv) {
    state_args(argc, argv);
    for (int i = 0; i < steps; i++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        zeroed += i;
        snprintf(text, sizeof text, "tls-%d", i);
        pause_step();
        /* errno survives a checkpoint signal landing in this busy loop (a sleep the signal
         * cuts short sets errno to EINTR itself, so the sleep comes before). */
        errno = 1000 + i;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do
            clock_gettime(CLOCK_MONOTONIC, &now);
        while ((now.tv_sec - start.tv_sec) * 1000000000L + now.tv_nsec - start.tv_nsec < 3000000L);
        printf("step %d counter %016llx text %s zeroed %d errno %d\n", i, counter, text, zeroed,
               errno == 1000 + i ? 1000 + i : -1);
    }
    printf("result %016llx %d\n", counter, zeroed);
    return 0;
}
