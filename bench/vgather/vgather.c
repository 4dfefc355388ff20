/* A program dominated by MPI_Allgatherv, MPI_Gatherv and MPI_Scatterv of MPI_INT, to measure
 * what libmpi's handling of the user's buffers costs in time and memory.
 *
 *     vgather [MiB] [iterations] [nb]
 *
 * Every rank holds a receive buffer of MiB (default 64) and contributes a block of it whose
 * size grows with its rank; the blocks lie in reverse rank order with a gap before each. Each
 * iteration is one Allgatherv into the buffer, one Gatherv of the same blocks to rank 0 and one
 * Scatterv back; with `nb`, their non-blocking forms, each waited for at once. Rank 0 prints
 * the time, a checksum and every rank's peak resident memory. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
    int rank, size, i, it;
    long mib = argc > 1 ? atol(argv[1]) : 64, iters = argc > 2 ? atol(argv[2]) : 20;
    int nb = argc > 3 && strcmp(argv[3], "nb") == 0;
    MPI_Request req;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long total = mib * 1024 * 1024 / sizeof(int), gap = 16, weights = size * (size + 1) / 2;
    int *counts = malloc(size * sizeof(int)), *displs = malloc(size * sizeof(int));
    long at = total;
    for (i = 0; i < size; i++) {
        counts[i] = (int)((total - gap * size) / weights * (i + 1));
        at -= counts[i] + gap;
        displs[i] = (int)at;
    }
    int *buf = malloc(total * sizeof(int)), *mine = malloc(counts[rank] * sizeof(int));
    for (i = 0; i < counts[rank]; i++) mine[i] = rank * 7 + i;
    for (i = 0; i < total; i++) buf[i] = -1;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (it = 0; it < iters && !nb; it++) {
        MPI_Allgatherv(mine, counts[rank], MPI_INT, buf, counts, displs, MPI_INT,
                       MPI_COMM_WORLD);
        MPI_Gatherv(mine, counts[rank], MPI_INT, buf, counts, displs, MPI_INT, 0,
                    MPI_COMM_WORLD);
        MPI_Scatterv(buf, counts, displs, MPI_INT, mine, counts[rank], MPI_INT, 0,
                     MPI_COMM_WORLD);
    }
    for (it = 0; it < iters && nb; it++) {
        MPI_Iallgatherv(mine, counts[rank], MPI_INT, buf, counts, displs, MPI_INT,
                        MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        MPI_Igatherv(mine, counts[rank], MPI_INT, buf, counts, displs, MPI_INT, 0,
                     MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        MPI_Iscatterv(buf, counts, displs, MPI_INT, mine, counts[rank], MPI_INT, 0,
                      MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    }
    double t = MPI_Wtime() - t0;
    long long sum = 0;
    for (i = 0; i < size; i++) sum += buf[displs[i]] + buf[displs[i] + counts[i] - 1];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss = ru.ru_maxrss, *all = malloc(size * sizeof(long));
    MPI_Gather(&rss, 1, MPI_LONG, all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("vgather%s: %d ranks, %ld MiB, %ld iterations: %.3f s, checksum %lld\n",
               nb ? " nb" : "", size, mib, iters, t, sum);
        printf("peak RSS (MiB):");
        for (i = 0; i < size; i++) printf(" %.1f", all[i] / 1024.0);
        printf("\n");
    }
    MPI_Finalize();
    return 0;
}
