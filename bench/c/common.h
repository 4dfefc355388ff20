/* Shared helpers for the C benchmark programs, which are built unchanged with
 * MPICH's mpicc.mpich and with mpicr's mpicc.
 *
 * The Rust programs in ../mpicr-bench/src/lib.rs (latency, bandwidth,
 * allreduce) implement exactly the same size lists and iteration schedules;
 * change both together. */
#ifndef MPICR_BENCH_COMMON_H
#define MPICR_BENCH_COMMON_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES (4L * 1024 * 1024) /* largest message: 4 MiB */
#define WINDOW 64                    /* bandwidth: messages in flight */
#define QUICK_DIVISOR 10             /* --quick divides iteration counts and time budgets */

/* 1 when the program was started with --quick. */
static int bench_quick(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            return 1;
        }
    }
    return 0;
}

/* Iteration count for a message of `bytes`: `base` up to 8 KiB, then shrinking
 * in proportion to the size (so every size moves about the same volume), never
 * below `floor`. --quick divides by QUICK_DIVISOR, again never below `floor`. */
static long bench_iters(long bytes, long base, long floor, int quick) {
    long n = base;
    if (bytes > 8192) {
        n = base * 8192 / bytes;
    }
    if (quick) {
        n /= QUICK_DIVISOR;
    }
    return n < floor ? floor : n;
}

/* Warm-up iterations: a tenth of the scheduled ones, between 1 and 100. */
static long bench_warmup(long iters) {
    long w = iters / 10;
    if (w > 100) {
        w = 100;
    }
    return w < 1 ? 1 : w;
}

/* Collective: the number of timed iterations every rank will run. Rank 0
 * estimates the cost of one iteration from its warm-up (`warm_elapsed`
 * seconds for `warm_n` iterations) and caps the scheduled count `sched` so
 * the timed loop takes about `budget` seconds, never below `floor`; the
 * result is broadcast from rank 0 so every rank agrees. With a fast
 * implementation the schedule decides; the budget only keeps a slow or
 * oversubscribed run short. */
static long bench_agree_iters(double warm_elapsed, long warm_n, long sched, long floor,
                              double budget, int quick) {
    long iters = sched;
    double per_iter = warm_elapsed / (double)warm_n;
    if (quick) {
        budget /= QUICK_DIVISOR;
    }
    if (per_iter > 0.0 && budget / per_iter < (double)iters) {
        iters = (long)(budget / per_iter);
    }
    if (iters < floor) {
        iters = floor;
    }
    if (MPI_Bcast(&iters, 1, MPI_LONG, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "benchmark: broadcast of the iteration count failed\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return iters;
}

static void bench_check(int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "benchmark: %s failed (error %d)\n", what, rc);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

static void *bench_alloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "benchmark: out of memory (%zu bytes)\n", bytes);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(p, 0xa5, bytes ? bytes : 1);
    return p;
}

#endif
