/* disabled_region MODE GATE STEPS: a checkpoint that reaches a rank inside a region with
 * checkpoints disabled, for the image checkpointer's deferral (tests/image.rs).
 *
 * The ranks run STEPS/2 ring steps (rank 0 prints one line per step), then:
 *   wait      rank 0 enters MPIX_Ckpt_disable and stays there until the file GATE exists;
 *             rank 1 meanwhile waits in MPI_Recv for a message rank 0 sends after the region.
 *   needs     the same region, but before it ends rank 0 sends to rank 1 and waits for
 *             rank 1's reply: a region that needs a message its peer sends later. After the
 *             region rank 0 waits, outside any region, until the file GATE.after exists.
 *   finalize  after the last step rank 1 enters MPI_Finalize (saying so on stderr) while
 *             rank 0 waits, outside any region, until GATE exists.
 *   late      rank 0 waits, outside any region, until GATE exists (so it answers a
 *             checkpoint and begins its drain), then enters MPIX_Ckpt_disable (saying so) and
 *             stays there until GATE.after exists (saying when it left); rank 1 says it waits, then waits for
 *             GATE.peer without calling MPI (so it cannot answer before), then in MPI_Recv
 *             for a message rank 0 sends after the region: rank 0's drain can complete
 *             inside a region it entered late.
 * then the other STEPS/2 steps and a result line. While rank 0 waits for GATE it calls
 * MPIX_Ckpt_safepoint and MPI_Iprobe, so that it reads the coordinator's requests and its
 * peers' packets; it looks for GATE before those calls, so everything that was sent before
 * GATE was created has been read when it stops waiting. Every rank but 0 acts as rank 1. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 5) | (acc >> 59);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

static void wait_for_gate(const char *gate) {
    for (;;) {
        int open = access(gate, F_OK) == 0, flag;
        MPIX_Ckpt_safepoint();
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        if (open) return;
        struct timespec t = {0, 2000000L};
        nanosleep(&t, NULL);
    }
}

static uint64_t steps(uint64_t acc, long from, long to, int rank, int size) {
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    for (long step = from; step < to; step++) {
        uint64_t got, total;
        MPI_Sendrecv(&acc, 1, MPI_UINT64_T, next, 1, &got, 1, MPI_UINT64_T, prev, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        acc = mix(acc, got);
        MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) printf("step %ld %016llx\n", step, (unsigned long long)total);
    }
    return acc;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: disabled_region wait|needs|finalize|late GATE STEPS\n");
        return 2;
    }
    const char *mode = argv[1], *gate = argv[2];
    long n = atol(argv[3]);
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    uint64_t acc = steps((uint64_t)rank + 1, 0, n / 2, rank, size), v;
    char after[4096], peer[4096];
    snprintf(after, sizeof after, "%s.after", gate);
    snprintf(peer, sizeof peer, "%s.peer", gate);
    if (strcmp(mode, "wait") == 0 || strcmp(mode, "needs") == 0) {
        int needs = strcmp(mode, "needs") == 0;
        if (rank == 0) {
            MPIX_Ckpt_disable();
            fprintf(stderr, "rank 0 is in its region\n");
            wait_for_gate(gate);
            if (needs) {
                MPI_Send(&acc, 1, MPI_UINT64_T, 1, 8, MPI_COMM_WORLD);
                MPI_Recv(&v, 1, MPI_UINT64_T, 1, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                acc = mix(acc, v);
            }
            MPIX_Ckpt_enable();
            MPI_Send(&acc, 1, MPI_UINT64_T, 1, 7, MPI_COMM_WORLD);
            if (needs) wait_for_gate(after);
        } else if (rank == 1) {
            if (needs) {
                MPI_Recv(&v, 1, MPI_UINT64_T, 0, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                acc = mix(acc, v);
                MPI_Send(&acc, 1, MPI_UINT64_T, 0, 9, MPI_COMM_WORLD);
            }
            MPI_Recv(&v, 1, MPI_UINT64_T, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            acc = mix(acc, v);
        }
    } else if (strcmp(mode, "late") == 0) {
        if (rank == 0) {
            fprintf(stderr, "rank 0 waits for the gate\n");
            wait_for_gate(gate);
            MPIX_Ckpt_disable();
            fprintf(stderr, "rank 0 is in its region\n");
            wait_for_gate(after);
            MPIX_Ckpt_enable();
            fprintf(stderr, "rank 0 left its region\n");
            MPI_Send(&acc, 1, MPI_UINT64_T, 1, 7, MPI_COMM_WORLD);
        } else if (rank == 1) {
            struct timespec t = {0, 2000000L};
            fprintf(stderr, "rank 1 waits for the gate outside MPI\n");
            while (access(peer, F_OK) != 0) nanosleep(&t, NULL);
            MPI_Recv(&v, 1, MPI_UINT64_T, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            acc = mix(acc, v);
        }
    }
    acc = steps(acc, n / 2, n, rank, size);
    uint64_t total;
    MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("result %016llx after %ld steps on %d ranks\n", (unsigned long long)total, n,
               size);
        fflush(stdout);
    }
    if (strcmp(mode, "finalize") == 0) {
        if (rank == 0) {
            wait_for_gate(gate);
        } else {
            fprintf(stderr, "rank %d finalizes\n", rank);
        }
    }
    MPI_Finalize();
    return 0;
}
