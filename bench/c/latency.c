/* Ping-pong latency between ranks 0 and 1.
 *
 * For each size (0 B, then 1 B, 2 B, 4 B ... 4 MiB) rank 0 sends a message to
 * rank 1, which sends it straight back. After warm-up round trips the ranks
 * agree on an iteration count (see bench_agree_iters) and rank 0 times that
 * many round trips. Reported: one-way latency in microseconds = round-trip
 * time / 2. Ranks other than 0 and 1 only take part in the collectives.
 * Output: "# latency us" then "size_bytes value" lines. */
#include "common.h"

#define BASE_ITERS 50000
#define MIN_ITERS 20
#define BUDGET_SECONDS 0.2
#define TAG 1

static void round_trips(int rank, char *buf, int n, long count) {
    for (long i = 0; i < count; i++) {
        if (rank == 0) {
            bench_check(MPI_Send(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD), "send");
            bench_check(MPI_Recv(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                        "recv");
        } else if (rank == 1) {
            bench_check(MPI_Recv(buf, n, MPI_BYTE, 0, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                        "recv");
            bench_check(MPI_Send(buf, n, MPI_BYTE, 0, TAG, MPI_COMM_WORLD), "send");
        }
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        fprintf(stderr, "latency: needs at least 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int quick = bench_quick(argc, argv);
    char *buf = bench_alloc(MAX_BYTES);
    if (rank == 0) {
        printf("# latency us\n");
    }

    for (long bytes = 0; bytes <= MAX_BYTES; bytes = bytes ? bytes * 2 : 1) {
        long sched = bench_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        long warmup = bench_warmup(sched);
        int n = (int)bytes;

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        round_trips(rank, buf, n, warmup);
        long iters = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_ITERS,
                                       BUDGET_SECONDS, quick);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        round_trips(rank, buf, n, iters);
        double elapsed = MPI_Wtime() - t0;
        if (rank == 0) {
            printf("%ld %.3f\n", bytes, elapsed * 1e6 / (2.0 * (double)iters));
            fflush(stdout);
        }
    }

    free(buf);
    MPI_Finalize();
    return 0;
}
