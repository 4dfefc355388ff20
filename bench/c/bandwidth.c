/* Streaming bandwidth from rank 0 to rank 1, in the style of osu_bw.
 *
 * For each size (1 B, 2 B ... 4 MiB) one "loop" is: rank 0 starts WINDOW (64)
 * non-blocking sends of the message, rank 1 posts 64 non-blocking receives
 * (any tag: only data messages go from 0 to 1) into 64 separate buffers; both
 * wait for all of them; then rank 1 sends a 4-byte acknowledgement that rank
 * 0 receives. After warm-up loops the ranks agree on a loop count (see
 * bench_agree_iters) and rank 0 times that many loops. Reported: MB/s (10^6
 * bytes per second) = size * 64 * loops / elapsed. Output: "# bandwidth MB/s"
 * then "size_bytes value" lines. */
#include "common.h"

#define BASE_LOOPS 1000
#define MIN_LOOPS 4
#define BUDGET_SECONDS 0.3
#define DATA_TAG 2
#define ACK_TAG 3

static void window_loops(int rank, char *buf, long bytes, long count) {
    MPI_Request reqs[WINDOW];
    MPI_Status statuses[WINDOW];
    int ack = 0;
    int n = (int)bytes;
    for (long i = 0; i < count; i++) {
        if (rank == 0) {
            for (int w = 0; w < WINDOW; w++) {
                bench_check(MPI_Isend(buf, n, MPI_BYTE, 1, DATA_TAG, MPI_COMM_WORLD, &reqs[w]),
                            "isend");
            }
            bench_check(MPI_Waitall(WINDOW, reqs, statuses), "waitall");
            bench_check(MPI_Recv(&ack, 1, MPI_INT, 1, ACK_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                        "recv ack");
        } else if (rank == 1) {
            for (int w = 0; w < WINDOW; w++) {
                bench_check(MPI_Irecv(buf + (long)w * bytes, n, MPI_BYTE, 0, MPI_ANY_TAG,
                                      MPI_COMM_WORLD, &reqs[w]),
                            "irecv");
            }
            bench_check(MPI_Waitall(WINDOW, reqs, statuses), "waitall");
            bench_check(MPI_Send(&ack, 1, MPI_INT, 0, ACK_TAG, MPI_COMM_WORLD), "send ack");
        }
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        fprintf(stderr, "bandwidth: needs at least 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int quick = bench_quick(argc, argv);
    /* The sender reuses one buffer for all sends of a window; the receiver
     * gets WINDOW distinct buffers (one slab cut into WINDOW pieces). */
    char *buf = bench_alloc(rank == 1 ? MAX_BYTES * WINDOW : MAX_BYTES);
    if (rank == 0) {
        printf("# bandwidth MB/s\n");
    }

    for (long bytes = 1; bytes <= MAX_BYTES; bytes *= 2) {
        long sched = bench_iters(bytes, BASE_LOOPS, MIN_LOOPS, quick);
        long warmup = bench_warmup(sched);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        double t0 = MPI_Wtime();
        window_loops(rank, buf, bytes, warmup);
        long loops = bench_agree_iters(MPI_Wtime() - t0, warmup, sched, MIN_LOOPS,
                                       BUDGET_SECONDS, quick);

        bench_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
        t0 = MPI_Wtime();
        window_loops(rank, buf, bytes, loops);
        double elapsed = MPI_Wtime() - t0;
        if (rank == 0) {
            double total = (double)bytes * WINDOW * (double)loops;
            printf("%ld %.2f\n", bytes, total / elapsed / 1e6);
            fflush(stdout);
        }
    }

    free(buf);
    MPI_Finalize();
    return 0;
}
