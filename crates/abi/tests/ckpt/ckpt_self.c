/* ckpt_self STEPS PAUSE_MS REQUEST_AT MODEFILE [HOLD_AT HOLDFILE]: the rest of the self
 * checkpointer's C API.
 *
 * Rank 0 asks for a global checkpoint itself (MPIX_Ckpt_request) at step REQUEST_AT (-1: never).
 * Each step reduces over all ranks inside an MPIX_Ckpt_disable/_enable region, passes a
 * message around the ring and updates a protected array, then passes a safepoint. At the end
 * rank 0 prints one result line.
 *
 * With HOLD_AT, the last rank waits outside MPI for HOLDFILE to exist just before the
 * safepoint of step HOLD_AT, and rank 0, one step ahead, prints "rank 0 waits in its region"
 * inside the next step's region, where its reduction waits for that rank: a checkpoint asked
 * for then reaches rank 0 inside its region, and the last rank at its safepoint.
 *
 * A restarted run says so on stdout ("restarted at step N") and reads MODEFILE (missing: ok)
 * to decide how it protects its state before MPIX_Ckpt_recover:
 *   ok     as in the first run, so the job continues to the uninterrupted result;
 *   size   region 1 with 8 bytes more   -> MPI_ERR_COUNT (MPI_ERRORS_RETURN), printed;
 *   id     region 2 under id 7          -> MPI_ERR_ARG (MPI_ERRORS_RETURN), printed;
 *   fatal  as size, with the default MPI_ERRORS_ARE_FATAL: the job is aborted.
 *
 * ckpt_self pending (2 ranks): rank 0 passes safepoints with a receive outstanding (with
 * MPI_ERRORS_RETURN) until one refuses a checkpoint, and prints what it returned.
 *
 * ckpt_self inregion GATE: every safepoint is inside a disabled region, so no checkpoint can
 * be taken; the ranks stop once GATE exists, and rank 0 prints "done". */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "steps.h"

#define DATA 1000

static const char *class_name(int code) {
    int class = -1;
    MPI_Error_class(code, &class);
    switch (class) {
    case MPI_SUCCESS: return "MPI_SUCCESS";
    case MPI_ERR_ARG: return "MPI_ERR_ARG";
    case MPI_ERR_COUNT: return "MPI_ERR_COUNT";
    case MPI_ERR_PENDING: return "MPI_ERR_PENDING";
    case MPI_ERR_OTHER: return "MPI_ERR_OTHER";
    default: return "another class";
    }
}

static int pending(void) {
    int rank, size, code = MPI_SUCCESS, done = 0, round;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    /* Rank 0 passes each safepoint with a receive from rank 1 outstanding; rank 1 sends
     * after its own safepoint, so they stay collective in effect. Until a safepoint refuses. */
    for (round = 0; rank < 2 && size >= 2 && round < 1000 && !done; round++) {
        if (rank == 0) {
            int got = -1;
            MPI_Request r;
            MPI_Irecv(&got, 1, MPI_INT, 1, 99, MPI_COMM_WORLD, &r);
            code = MPIX_Ckpt_safepoint();
            MPI_Wait(&r, MPI_STATUS_IGNORE);
            if (got != round)
                printf("rank 0: round %d got %d\n", round, got);
            done = code != MPI_SUCCESS;
            MPI_Send(&done, 1, MPI_INT, 1, 98, MPI_COMM_WORLD);
        } else {
            if (MPIX_Ckpt_safepoint() != MPI_SUCCESS)
                printf("rank 1: a safepoint without requests failed\n");
            pause_ms(50);
            MPI_Send(&round, 1, MPI_INT, 0, 99, MPI_COMM_WORLD);
            MPI_Recv(&done, 1, MPI_INT, 0, 98, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
    }
    if (rank == 0)
        printf("safepoint refused: %s\n", class_name(code));
    MPI_Finalize();
    return 0;
}

static int inregion(const char *gate) {
    int rank;
    long stop = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    do {
        long open = rank == 0 && access(gate, F_OK) == 0;
        MPIX_Ckpt_disable();
        MPI_Allreduce(&open, &stop, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        MPIX_Ckpt_safepoint();
        MPIX_Ckpt_enable();
        pause_ms(20);
    } while (!stop);
    if (rank == 0)
        printf("done\n");
    MPI_Finalize();
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc > 1 && strcmp(argv[1], "pending") == 0)
        return pending();
    if (argc > 2 && strcmp(argv[1], "inregion") == 0)
        return inregion(argv[2]);
    if (argc < 5) {
        fprintf(stderr, "usage: ckpt_self STEPS PAUSE_MS REQUEST_AT MODEFILE | pending\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    long steps = atol(argv[1]), pause = atol(argv[2]), request_at = atol(argv[3]);
    long hold_at = argc > 6 ? atol(argv[5]) : -1;
    const char *hold = argc > 6 ? argv[6] : NULL;
    int rank, size, restarted = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    uint64_t st[3] = {0, (uint64_t)rank * 7 + 1, 0}; /* step, checksum; st[2] is spare */
    static uint64_t data[DATA];
    for (int i = 0; i < DATA; i++)
        data[i] = (uint64_t)(rank * DATA + i);

    MPIX_Ckpt_restarted(&restarted);
    char mode[16] = "ok";
    if (restarted) {
        FILE *f = fopen(argv[4], "r");
        if (f) {
            if (fscanf(f, "%15s", mode) != 1)
                strcpy(mode, "ok");
            fclose(f);
        }
        if (strcmp(mode, "fatal") != 0)
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    int bigger = strcmp(mode, "size") == 0 || strcmp(mode, "fatal") == 0;
    MPIX_Ckpt_protect(1, st, bigger ? 3 * sizeof *st : 2 * sizeof *st);
    MPIX_Ckpt_protect(strcmp(mode, "id") == 0 ? 7 : 2, data, sizeof data);
    if (restarted) {
        int code = MPIX_Ckpt_recover();
        if (code != MPI_SUCCESS) {
            if (rank == 0)
                printf("recover failed: %s\n", class_name(code));
            MPI_Finalize();
            return 0;
        }
        if (rank == 0)
            printf("restarted at step %llu\n", (unsigned long long)st[0]);
    }

    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    while ((long)st[0] < steps) {
        if (rank == 0 && (long)st[0] == request_at)
            MPIX_Ckpt_request();
        uint64_t all = 0;
        MPIX_Ckpt_disable();
        if (rank == 0 && (long)st[0] == hold_at) {
            printf("rank 0 waits in its region\n");
            fflush(stdout);
        }
        MPI_Allreduce(&st[1], &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        MPIX_Ckpt_enable();
        uint64_t got = 0;
        MPI_Sendrecv(&all, 1, MPI_UINT64_T, next, 5, &got, 1, MPI_UINT64_T, prev, 5,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        st[1] = mix(st[1], got ^ st[0]);
        for (int i = 0; i < DATA; i++)
            data[i] = mix(data[i], st[1]);
        st[0]++;
        if (rank == size - 1 && size > 1 && (long)st[0] == hold_at)
            while (access(hold, F_OK) != 0)
                pause_ms(10);
        MPIX_Ckpt_safepoint();
        pause_ms(pause);
    }
    uint64_t local = st[1], total = 0;
    for (int i = 0; i < DATA; i++)
        local = mix(local, data[i]);
    MPI_Allreduce(&local, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("result %016llx after %ld steps on %d ranks\n", (unsigned long long)total, steps,
               size);
    MPI_Finalize();
    return 0;
}
