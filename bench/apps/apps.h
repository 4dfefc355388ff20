/* Shared by the ChaRM4MPI table-2 programs (bench/apps): argument parsing and a
 * deterministic checksum. Every program takes STATE_MIB (the memory one rank
 * works on) and ITERATIONS, computes without any reference to time, and prints
 * one result line on rank 0 that an uninterrupted run and a checkpointed,
 * killed and restarted run must print identically. */
#ifndef APPS_H
#define APPS_H
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void apps_args(int argc, char **argv, long *mib, long *iters, long dmib, long diters) {
    *mib = argc > 1 ? atol(argv[1]) : dmib;
    *iters = argc > 2 ? atol(argv[2]) : diters;
    if (*mib < 1 || *iters < 1) {
        fprintf(stderr, "usage: %s [STATE_MIB >= 1] [ITERATIONS >= 1]\n", argv[0]);
        exit(2);
    }
}

static void *apps_alloc(size_t bytes) {
    void *p = calloc(1, bytes);
    if (p == NULL) {
        fprintf(stderr, "out of memory allocating %zu bytes\n", bytes);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

/* FNV-1a over bytes: an order-sensitive checksum of a buffer. */
static uint64_t apps_fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

/* The per-rank checksums of rank order, combined on rank 0. */
static uint64_t apps_combine(uint64_t mine) {
    int size, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    uint64_t *all = rank == 0 ? apps_alloc(sizeof(uint64_t) * (size_t)size) : NULL;
    MPI_Gather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    uint64_t h = 1469598103934665603ULL;
    if (rank == 0) {
        h = apps_fnv(h, all, sizeof(uint64_t) * (size_t)size);
        free(all);
    }
    return h;
}
#endif
