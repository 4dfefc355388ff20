/* isend_flood STEPS [PAUSE_MS]: non-blocking eager sends that overflow the link. Every step,
 * each of two ranks starts WINDOW non-blocking sends of MSG bytes to the other (3 MiB in all,
 * three times a 2-rank job's 1 MiB ring), stays out of MPI for PAUSE_MS, and only then posts
 * its receives and waits for everything. So most sends find the ring full while the peer is
 * away and wait in the sender's queue, borrowing the program's buffers.
 *
 * All messages of a step have the same tag, so they must arrive in the order they were sent:
 * each one's words encode (step, sender, index), and the receiver checks every word. Rank 0
 * prints one line per step (through stdio, fully buffered when stdout is a pipe) and a result
 * line with a checksum of everything received. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WINDOW 96
#define MSG (32 * 1024)
#define WORDS (MSG / 8)

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 5) | (acc >> 59);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

static uint64_t word(long step, int sender, int index, int i) {
    uint64_t v = ((uint64_t)step << 40) ^ ((uint64_t)sender << 32) ^ ((uint64_t)index << 16) ^
                 (uint64_t)i;
    return v * 0x9e3779b97f4a7c15ULL;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 20;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        fprintf(stderr, "isend_flood: needs 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int peer = 1 - rank;
    uint64_t *out = malloc((size_t)WINDOW * MSG);
    uint64_t *in = malloc((size_t)WINDOW * MSG);
    if (!out || !in) {
        fprintf(stderr, "out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Request r[2 * WINDOW];
    uint64_t sum = 0;
    for (long step = 0; step < steps; step++) {
        for (int m = 0; m < WINDOW; m++) {
            for (int i = 0; i < WORDS; i++) {
                out[(size_t)m * WORDS + i] = word(step, rank, m, i);
            }
            MPI_Isend(out + (size_t)m * WORDS, MSG, MPI_BYTE, peer, 7, MPI_COMM_WORLD, &r[m]);
        }
        if (pause > 0) {
            struct timespec ts = {pause / 1000, (pause % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (int m = 0; m < WINDOW; m++) {
            MPI_Irecv(in + (size_t)m * WORDS, MSG, MPI_BYTE, peer, 7, MPI_COMM_WORLD,
                      &r[WINDOW + m]);
        }
        MPI_Waitall(2 * WINDOW, r, MPI_STATUSES_IGNORE);
        uint64_t step_sum = 0;
        for (int m = 0; m < WINDOW; m++) {
            for (int i = 0; i < WORDS; i++) {
                uint64_t got = in[(size_t)m * WORDS + i];
                if (got != word(step, peer, m, i)) {
                    fprintf(stderr, "rank %d: step %ld message %d word %d is wrong\n", rank, step,
                            m, i);
                    MPI_Abort(MPI_COMM_WORLD, 3);
                }
                step_sum = mix(step_sum, got);
            }
        }
        uint64_t both = 0;
        MPI_Allreduce(&step_sum, &both, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        sum = mix(sum, both);
        if (rank == 0) {
            printf("step %ld %016llx\n", step, (unsigned long long)both);
        }
    }
    if (rank == 0) {
        printf("result %016llx\n", (unsigned long long)sum);
    }
    free(out);
    free(in);
    MPI_Finalize();
    return 0;
}
