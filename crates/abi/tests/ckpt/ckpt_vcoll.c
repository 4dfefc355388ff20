/* ckpt_vcoll STEPS [PAUSE_MS]: gathers, scatters and all-gathers whose blocks libmpi reads and
 * writes in the user's buffers, checkpointed by the default (image) checkpointer while they are
 * under way; prints one checksum line at the end.
 *
 * Every step each rank starts an Iallgatherv, an Igatherv and an Iscatterv of rendezvous-sized
 * blocks (reverse rank order, gaps, the root's block in place), then rank 0 sleeps PAUSE_MS
 * before it tests them, so the other ranks wait inside MPI_Testall with their requests
 * outstanding, holding their buffers, when a checkpoint asked meanwhile is taken; then a
 * blocking Allgatherv in place, Gatherv and Scatterv. The same checksum must come out whether
 * or not the job was checkpointed, killed and restored in between. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steps.h"

#define K 12000 /* uint64s per unit of block: 96 KB, above the eager limit */
#define GAP 5

static uint64_t fold(uint64_t acc, const uint64_t *b, int n) {
    for (int i = 0; i < n; i += 997) acc = mix(acc, b[i]);
    return n > 0 ? mix(acc, b[n - 1]) : acc;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 50;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *counts = malloc(size * sizeof(int)), *displs = malloc(size * sizeof(int));
    int total = 0;
    for (int i = size - 1; i >= 0; i--) {
        counts[i] = i == 1 ? 0 : (i + 1) * K; /* rank 1's block is empty */
        displs[i] = total + GAP;
        total += counts[i] + GAP;
    }
    uint64_t *mine = malloc((size + 1) * K * sizeof(uint64_t));
    uint64_t *all = malloc(total * sizeof(uint64_t)), *all2 = malloc(total * sizeof(uint64_t));
    uint64_t *g = malloc(total * sizeof(uint64_t)), *src = malloc(total * sizeof(uint64_t));
    uint64_t *part = malloc((size + 1) * K * sizeof(uint64_t));
    uint64_t acc = (uint64_t)rank + 1;
    for (long step = 0; step < steps; step++) {
        int n = counts[rank], groot = (int)(step % size), sroot = (int)((step + 1) % size);
        for (int i = 0; i < n; i++) mine[i] = mix(acc, (uint64_t)i);
        for (int i = 0; i < total; i++) src[i] = mix(acc, (uint64_t)~i);
        if (rank == groot)
            for (int i = 0; i < n; i++) g[displs[rank] + i] = mine[i];
        MPI_Request r[3];
        MPI_Iallgatherv(mine, n, MPI_UINT64_T, all2, counts, displs, MPI_UINT64_T,
                        MPI_COMM_WORLD, &r[0]);
        MPI_Igatherv(rank == groot ? MPI_IN_PLACE : mine, n, MPI_UINT64_T, g, counts, displs,
                     MPI_UINT64_T, groot, MPI_COMM_WORLD, &r[1]);
        MPI_Iscatterv(src, counts, displs, MPI_UINT64_T, part, n, MPI_UINT64_T, sroot,
                      MPI_COMM_WORLD, &r[2]);
        if (rank == 0) pause_ms(pause);
        int done = 0;
        while (!done) {
            MPI_Testall(3, r, &done, MPI_STATUSES_IGNORE);
            if (!done) pause_ms(1);
        }
        acc = fold(acc, all2, total);
        if (rank == groot) acc = fold(acc, g, total);
        acc = fold(acc, part, n);

        for (int i = 0; i < n; i++) all[displs[rank] + i] = mix(acc, (uint64_t)i + 7);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, displs, MPI_UINT64_T,
                       MPI_COMM_WORLD);
        acc = fold(acc, all, total);
        MPI_Gatherv(mine, n, MPI_UINT64_T, g, counts, displs, MPI_UINT64_T, sroot,
                    MPI_COMM_WORLD);
        if (rank == sroot) acc = fold(acc, g, total);
        MPI_Scatterv(all, counts, displs, MPI_UINT64_T, part, n, MPI_UINT64_T, groot,
                     MPI_COMM_WORLD);
        acc = fold(acc, part, n);
    }
    uint64_t sum = 0;
    MPI_Allreduce(&acc, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("result %016llx after %ld steps on %d ranks\n", (unsigned long long)sum, steps,
               size);
    free(part);
    free(src);
    free(g);
    free(all2);
    free(all);
    free(mine);
    free(displs);
    free(counts);
    MPI_Finalize();
    return 0;
}
