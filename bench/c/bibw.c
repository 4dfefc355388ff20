/* Bidirectional bandwidth between ranks 0 and 1, in the style of osu_bibw.
 *
 * For each size (1 B, 2 B ... 4 MiB) one "loop" is, on both ranks at once:
 * post WINDOW (64) non-blocking receives from the peer into 64 separate
 * buffers, start 64 non-blocking sends of the message to the peer, wait for
 * all 128 requests. Both directions are busy at the same time; the waits end
 * a loop on both ranks, so no acknowledgement is needed. After warm-up loops
 * the ranks agree on a loop count (see bench_agree_iters) and rank 0 times
 * that many loops. Reported: MB/s (10^6 bytes per second) = size * 64 * 2 *
 * loops / elapsed, the bytes of both directions. Ranks other than 0 and 1
 * only take part in the collectives. Output: "# bibw MB/s" then
 * "size_bytes value" lines. */
#include "common.h"

#define BASE_LOOPS 1000
#define MIN_LOOPS 4
#define BUDGET_SECONDS 0.3
#define DATA_TAG 4

static void window_loops(int rank, char *sbuf, char *rbuf, long bytes, long count) {
    MPI_Request reqs[2 * WINDOW];
    MPI_Status statuses[2 * WINDOW];
    int n = (int)bytes;
    int peer = 1 - rank;
    if (rank > 1) {
        return;
    }
    for (long i = 0; i < count; i++) {
        for (int w = 0; w < WINDOW; w++) {
            bench_check(MPI_Irecv(rbuf + (long)w * bytes, n, MPI_BYTE, peer, DATA_TAG,
                                  MPI_COMM_WORLD, &reqs[w]),
                        "irecv");
        }
        for (int w = 0; w < WINDOW; w++) {
            bench_check(MPI_Isend(sbuf, n, MPI_BYTE, peer, DATA_TAG, MPI_COMM_WORLD,
                                  &reqs[WINDOW + w]),
                        "isend");
        }
        bench_check(MPI_Waitall(2 * WINDOW, reqs, statuses), "waitall");
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        fprintf(stderr, "bibw: needs at least 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int quick = bench_quick(argc, argv);
    /* Each of ranks 0 and 1 sends from one buffer and receives into WINDOW
     * distinct buffers (one slab cut into WINDOW pieces). */
    char *sbuf = bench_alloc(rank < 2 ? MAX_BYTES : 0);
    char *rbuf = bench_alloc(rank < 2 ? MAX_BYTES * WINDOW : 0);
    if (rank == 0) {
        printf("# bibw MB/s\n");
    }

    for (long bytes = 1; bytes <= MAX_BYTES; bytes *= 2) {
        long sched = bench_iters(bytes, BASE_LOOPS, MIN_LOOPS, quick);
        long warmup = bench_warmup(sched);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        window_loops(rank, sbuf, rbuf, bytes, warmup);
        long loops = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_LOOPS,
                                       BUDGET_SECONDS, quick);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        window_loops(rank, sbuf, rbuf, bytes, loops);
        double elapsed = MPI_Wtime() - t0;
        if (rank == 0) {
            double total = 2.0 * (double)bytes * WINDOW * (double)loops;
            printf("%ld %.2f\n", bytes, total / elapsed / 1e6);
            fflush(stdout);
        }
    }

    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
