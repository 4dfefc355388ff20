/* The step loop shared by the per-kind state programs of tests/image_state.rs.
 *
 * Usage: PROGRAM STEPS SLOW_MS DIR. Each program keeps one kind of process state, prints one
 * line per step (deterministic: the same in every run) with printf and no fflush (stdout is a
 * pipe, so fully buffered: the buffer is part of the image), sleeps SLOW_MS between steps so
 * that a checkpoint lands in the middle, and ends with "result ...". DIR is a directory of
 * its own for the files it makes; no path is ever printed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int steps, slow_ms;
static const char *dir;

static inline void state_args(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s STEPS SLOW_MS [DIR]\n", argv[0]);
        exit(2);
    }
    steps = atoi(argv[1]);
    slow_ms = atoi(argv[2]);
    dir = argc > 3 ? argv[3] : ".";
}

/* Sleeps SLOW_MS, through interruptions (the checkpoint signal cuts sleeps short). */
static inline void pause_step(void) {
    struct timespec t = {slow_ms / 1000, (long)(slow_ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {
    }
}

/* FNV-1a, continued from h. */
static inline unsigned long long fnv(const void *p, size_t n, unsigned long long h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV0 14695981039346656037ULL

/* DIR/name in a static buffer. */
static inline const char *in_dir(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}
