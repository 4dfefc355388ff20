/* All-to-all latency: MPI_Alltoall of bytes on every rank of the job (run it
 * on 4 ranks), in the style of osu_alltoall.
 *
 * For each per-peer block of 8 B, 16 B ... 256 KiB (every rank sends one
 * block to every rank, itself included) every rank runs warm-up calls, the
 * ranks agree on an iteration count (see bench_agree_iters), and every rank
 * times that many back-to-back calls after a barrier. Each rank's average
 * time per call is reduced with MAX (the slowest rank decides). Reported:
 * microseconds per call; the size column is the block size. Iteration counts
 * shrink with the block size. The received blocks are checked after the
 * timed loop. Output: "# alltoall us" then "size_bytes value" lines. */
#include "common.h"

#define BASE_ITERS 20000
#define MIN_ITERS 10
#define BUDGET_SECONDS 0.25
#define MIN_BLOCK 8L
#define MAX_BLOCK (256L * 1024) /* 256 KiB per peer */

/* The byte rank `from` sends to rank `to`. */
static unsigned char mark(int from, int to) {
    return (unsigned char)(1 + (from * 37 + to * 11) % 251);
}

static void alltoalls(const unsigned char *send, unsigned char *recv, int n, long count) {
    for (long i = 0; i < count; i++) {
        bench_check(MPI_Alltoall(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD),
                    "alltoall");
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int quick = bench_quick(argc, argv);
    unsigned char *send = bench_alloc((size_t)(MAX_BLOCK * size));
    unsigned char *recv = bench_alloc((size_t)(MAX_BLOCK * size));
    if (rank == 0) {
        printf("# alltoall us\n");
    }

    for (long bytes = MIN_BLOCK; bytes <= MAX_BLOCK; bytes *= 2) {
        long sched = bench_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        long warmup = bench_warmup(sched);
        int n = (int)bytes;
        for (int p = 0; p < size; p++) {
            memset(send + p * bytes, mark(rank, p), (size_t)bytes);
        }

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        alltoalls(send, recv, n, warmup);
        long iters = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_ITERS,
                                       BUDGET_SECONDS, quick);
        memset(recv, 0, (size_t)(bytes * size));

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        alltoalls(send, recv, n, iters);
        double mine = (MPI_Wtime() - t0) / (double)iters;

        for (int p = 0; p < size; p++) {
            const unsigned char *block = recv + p * bytes;
            unsigned char want = mark(p, rank);
            if (block[0] != want || block[bytes - 1] != want) {
                fprintf(stderr, "alltoall: rank %d got a wrong block from rank %d (%ld bytes)\n",
                        rank, p, bytes);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        }
        double slowest = 0.0;
        bench_check(MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
                    "allreduce max");
        if (rank == 0) {
            printf("%ld %.3f\n", bytes, slowest * 1e6);
            fflush(stdout);
        }
    }

    free(send);
    free(recv);
    MPI_Finalize();
    return 0;
}
