/* Allreduce latency: MPI_SUM over doubles on every rank of the job (run it
 * on 4 ranks).
 *
 * For each element count 1, 2, 4 ... 131072 (8 B ... 1 MiB) every rank runs
 * warm-up calls, the ranks agree on an iteration count (see
 * bench_agree_iters), and every rank times that many calls after a barrier.
 * Each rank's average time per call is reduced with MAX (the slowest rank
 * decides). Reported: microseconds per call. The result is checked after the
 * timed loop. Output: "# allreduce us" then "size_bytes value" lines. */
#include "common.h"

#define BASE_ITERS 20000
#define MIN_ITERS 10
#define BUDGET_SECONDS 0.25
#define MAX_COUNT (128L * 1024) /* 131072 doubles = 1 MiB */

static void allreduces(const double *send, double *recv, int n, long count) {
    for (long i = 0; i < count; i++) {
        bench_check(MPI_Allreduce(send, recv, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                    "allreduce");
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int quick = bench_quick(argc, argv);
    double *send = bench_alloc(MAX_COUNT * sizeof(double));
    double *recv = bench_alloc(MAX_COUNT * sizeof(double));
    for (long i = 0; i < MAX_COUNT; i++) {
        send[i] = (double)(rank + 1);
    }
    if (rank == 0) {
        printf("# allreduce us\n");
    }

    for (long count = 1; count <= MAX_COUNT; count *= 2) {
        long bytes = count * (long)sizeof(double);
        long sched = bench_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        long warmup = bench_warmup(sched);
        int n = (int)count;

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        allreduces(send, recv, n, warmup);
        long iters = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_ITERS,
                                       BUDGET_SECONDS, quick);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        allreduces(send, recv, n, iters);
        double mine = (MPI_Wtime() - t0) / (double)iters;

        double expect = (double)size * (double)(size + 1) / 2.0;
        if (recv[0] != expect || recv[n - 1] != expect) {
            fprintf(stderr, "allreduce: wrong result %g, expected %g\n", recv[0], expect);
            MPI_Abort(MPI_COMM_WORLD, 1);
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
