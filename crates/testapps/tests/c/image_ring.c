/* image_ring STEPS [PAUSE_MS]: a deterministic, message-heavy MPI program with no checkpoint
 * code at all, for the transparent (image) checkpointer. Rank 0 prints one line per step
 * (through stdio, fully buffered when stdout is a pipe) and a checksum at the end.
 *
 * Every step each rank receives the message its left neighbour sent in the previous step,
 * swaps a 200 KB block with both neighbours (rendezvous-sized, non-blocking), receives a small
 * message from every other rank with MPI_ANY_SOURCE, sends its running checksum to its right
 * neighbour, and the ranks agree on a sum (MPI_Allreduce), kept in a heap array. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BLOCK (200000 / 8)

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 5) | (acc >> 59);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 50;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    uint64_t acc = (uint64_t)rank + 1;
    uint64_t *hist = calloc((size_t)steps + 1, sizeof *hist);
    uint64_t *out = malloc(BLOCK * sizeof *out);
    uint64_t *from_prev = malloc(BLOCK * sizeof *from_prev);
    uint64_t *from_next = malloc(BLOCK * sizeof *from_next);
    MPI_Request *sends = malloc((size_t)size * sizeof *sends);
    if (!hist || !out || !from_prev || !from_next || !sends) {
        fprintf(stderr, "out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    for (long step = 0; step < steps; step++) {
        if (step > 0) {
            uint64_t carried[2];
            MPI_Recv(carried, 2, MPI_UINT64_T, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (carried[1] != (uint64_t)step - 1) {
                fprintf(stderr, "rank %d: carried message of step %lu in step %ld\n", rank,
                        (unsigned long)carried[1], step);
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            acc = mix(acc, carried[0]);
        }
        for (uint64_t i = 0; i < BLOCK; i++) out[i] = mix(acc, i);
        MPI_Request r[4];
        MPI_Irecv(from_prev, BLOCK, MPI_UINT64_T, prev, 2, MPI_COMM_WORLD, &r[0]);
        MPI_Irecv(from_next, BLOCK, MPI_UINT64_T, next, 3, MPI_COMM_WORLD, &r[1]);
        MPI_Isend(out, BLOCK, MPI_UINT64_T, next, 2, MPI_COMM_WORLD, &r[2]);
        MPI_Isend(out, BLOCK, MPI_UINT64_T, prev, 3, MPI_COMM_WORLD, &r[3]);
        MPI_Waitall(4, r, MPI_STATUSES_IGNORE);
        acc = mix(acc, from_prev[BLOCK - 1] ^ from_next[BLOCK / 2]);
        uint64_t note = acc ^ (uint64_t)rank, sum = 0;
        int n = 0;
        for (int p = 0; p < size; p++)
            if (p != rank) MPI_Isend(&note, 1, MPI_UINT64_T, p, 4, MPI_COMM_WORLD, &sends[n++]);
        for (int k = 1; k < size; k++) {
            uint64_t v;
            MPI_Recv(&v, 1, MPI_UINT64_T, MPI_ANY_SOURCE, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            sum += v;
        }
        MPI_Waitall(n, sends, MPI_STATUSES_IGNORE);
        acc = mix(acc, sum);
        uint64_t carry[2] = {acc, (uint64_t)step};
        MPI_Send(carry, 2, MPI_UINT64_T, next, 1, MPI_COMM_WORLD);
        uint64_t total;
        MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        hist[step] = total;
        if (rank == 0) printf("step %ld %016llx\n", step, (unsigned long long)total);
        if (pause > 0) {
            struct timespec t = {pause / 1000, (pause % 1000) * 1000000L};
            nanosleep(&t, NULL);
        }
    }
    uint64_t carried[2];
    MPI_Recv(carried, 2, MPI_UINT64_T, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    acc = mix(acc, carried[0]);
    for (long s = 0; s < steps; s++) acc = mix(acc, hist[s]);
    uint64_t total;
    MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("result %016llx after %ld steps on %d ranks\n",
                          (unsigned long long)total, steps, size);
    free(hist);
    free(out);
    free(from_prev);
    free(from_next);
    free(sends);
    MPI_Finalize();
    return 0;
}
