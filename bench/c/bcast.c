/* Broadcast latency: MPI_Bcast of bytes from rank 0 to every rank of the job
 * (run it on 4 ranks), in the style of osu_bcast.
 *
 * For each size 8 B, 16 B ... 1 MiB every rank runs warm-up calls, the ranks
 * agree on an iteration count (see bench_agree_iters), and every rank times
 * that many back-to-back calls after a barrier. Each rank's average time per
 * call is reduced with MAX (the slowest rank decides). Reported: microseconds
 * per call. The non-root ranks clear their buffer before the timed loop and
 * check the root's pattern after it. Output: "# bcast us" then
 * "size_bytes value" lines. */
#include "common.h"

#define BASE_ITERS 20000
#define MIN_ITERS 10
#define BUDGET_SECONDS 0.25
#define MIN_BYTES 8L
#define MAX_BCAST (1024L * 1024) /* 1 MiB */
#define ROOT 0

static unsigned char pattern(long i) {
    return (unsigned char)(1 + i % 251);
}

static void bcasts(unsigned char *buf, int n, long count) {
    for (long i = 0; i < count; i++) {
        bench_check(MPI_Bcast(buf, n, MPI_BYTE, ROOT, MPI_COMM_WORLD), "bcast");
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int quick = bench_quick(argc, argv);
    unsigned char *buf = bench_alloc(MAX_BCAST);
    if (rank == ROOT) {
        for (long i = 0; i < MAX_BCAST; i++) {
            buf[i] = pattern(i);
        }
        printf("# bcast us\n");
    }

    for (long bytes = MIN_BYTES; bytes <= MAX_BCAST; bytes *= 2) {
        long sched = bench_iters(bytes, BASE_ITERS, MIN_ITERS, quick);
        long warmup = bench_warmup(sched);
        int n = (int)bytes;

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        bcasts(buf, n, warmup);
        long iters = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_ITERS,
                                       BUDGET_SECONDS, quick);
        if (rank != ROOT) {
            memset(buf, 0, (size_t)bytes);
        }

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        bcasts(buf, n, iters);
        double mine = (MPI_Wtime() - t0) / (double)iters;

        long last = bytes - 1, mid = bytes / 2;
        if (buf[0] != pattern(0) || buf[mid] != pattern(mid) || buf[last] != pattern(last)) {
            fprintf(stderr, "bcast: rank %d got wrong data for %ld bytes\n", rank, bytes);
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

    free(buf);
    MPI_Finalize();
    return 0;
}
