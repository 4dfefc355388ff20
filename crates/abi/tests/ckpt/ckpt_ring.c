/* ckpt_ring STEPS [PAUSE_MS]: a deterministic, message-heavy C program that checkpoints
 * itself with the self checkpointer (MPIX_Ckpt_*) and prints one checksum line at the end.
 *
 * Every step each rank (1) receives the message its left neighbour sent in the previous step,
 * which crossed the safepoint in between and so is undelivered or in transit whenever a
 * checkpoint is taken; (2) swaps a 200 KB block with both neighbours (rendezvous-sized);
 * (3) receives a small message from every other rank with MPI_ANY_SOURCE; (4) sends its running
 * checksum to its right neighbour; then passes a safepoint. Its state is two protected
 * regions: a struct on the stack of main and a heap array. The same checksum must come out
 * whether or not the job was checkpointed, killed and restarted in between. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "steps.h"

#define BLOCK (200000 / 8)
#define HIST 16

struct state {
    uint64_t step;
    uint64_t acc;
};

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 50;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    int rank, size, restarted = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;

    struct state st = {0, (uint64_t)rank + 1};
    uint64_t *hist = calloc(HIST, sizeof *hist);
    uint64_t *out = malloc(BLOCK * sizeof *out);
    uint64_t *from_prev = malloc(BLOCK * sizeof *from_prev);
    uint64_t *from_next = malloc(BLOCK * sizeof *from_next);
    MPI_Request *sends = malloc((size_t)size * sizeof *sends);
    if (!hist || !out || !from_prev || !from_next || !sends) {
        fprintf(stderr, "out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPIX_Ckpt_protect(1, &st, sizeof st);
    MPIX_Ckpt_protect(2, hist, HIST * sizeof *hist);
    MPIX_Ckpt_restarted(&restarted);
    if (restarted) {
        MPIX_Ckpt_recover();
        fprintf(stderr, "rank %d: restarted at step %llu\n", rank, (unsigned long long)st.step);
    }

    while ((long)st.step < steps) {
        if (st.step > 0) {
            uint64_t carried[2];
            MPI_Recv(carried, 2, MPI_UINT64_T, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (carried[1] != st.step - 1) {
                fprintf(stderr, "rank %d: the carried message is of step %llu, not %llu\n", rank,
                        (unsigned long long)carried[1], (unsigned long long)(st.step - 1));
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            st.acc = mix(st.acc, carried[0]);
        }
        for (uint64_t i = 0; i < BLOCK; i++)
            out[i] = mix(st.acc, i);
        MPI_Sendrecv(out, BLOCK, MPI_UINT64_T, next, 2, from_prev, BLOCK, MPI_UINT64_T, prev, 2,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(out, BLOCK, MPI_UINT64_T, prev, 3, from_next, BLOCK, MPI_UINT64_T, next, 3,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        st.acc = mix(st.acc, from_prev[BLOCK - 1] ^ from_next[BLOCK / 2]);

        uint64_t note = st.acc ^ (uint64_t)rank, sum = 0;
        int n = 0;
        for (int peer = 0; peer < size; peer++)
            if (peer != rank)
                MPI_Isend(&note, 1, MPI_UINT64_T, peer, 4, MPI_COMM_WORLD, &sends[n++]);
        for (int k = 1; k < size; k++) {
            uint64_t v;
            MPI_Status s;
            MPI_Recv(&v, 1, MPI_UINT64_T, MPI_ANY_SOURCE, 4, MPI_COMM_WORLD, &s);
            sum += v * (uint64_t)(s.MPI_SOURCE + 1);
        }
        MPI_Waitall(n, sends, MPI_STATUSES_IGNORE);
        st.acc = mix(st.acc, sum);
        hist[st.step % HIST] = st.acc;

        uint64_t carry[2] = {st.acc, st.step};
        MPI_Send(carry, 2, MPI_UINT64_T, next, 1, MPI_COMM_WORLD);
        st.step++;
        MPIX_Ckpt_safepoint();
        pause_ms(pause);
    }
    uint64_t carried[2];
    MPI_Recv(carried, 2, MPI_UINT64_T, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    st.acc = mix(st.acc, carried[0]);
    for (int i = 0; i < HIST; i++)
        st.acc = mix(st.acc, hist[i]);
    uint64_t total = 0;
    MPI_Allreduce(&st.acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("result %016llx after %ld steps on %d ranks\n", (unsigned long long)total, steps,
               size);
    MPIX_Ckpt_unprotect(2);
    MPIX_Ckpt_unprotect(1);
    free(sends);
    free(from_next);
    free(from_prev);
    free(out);
    free(hist);
    MPI_Finalize();
    return 0;
}
