/* rare_calls MODE STEPS [MS]: two ranks, one of which calls MPI rarely and never waits for
 * anything that is not already there, for the image checkpointer's attention signal (a
 * checkpoint request must be answered at the rank's next MPI call, whatever the call).
 *
 *   send: rank 0 computes for MS milliseconds, then sends one int to rank 1 (MPI_Send, an
 *         eager message that completes at once), STEPS times; rank 1 receives each one.
 *   own:  as send, but every rank installs a handler of its own for SIGRTMAX - 2 (the
 *         runtime's attention signal) before MPI_Init; rank 0 says at the end whether it is
 *         still installed and how often it ran.
 *   test: rank 0 posts an MPI_Irecv for rank 1's answer, then computes STEPS chunks of MS
 *         milliseconds with an MPI_Test after each (the answer comes only at the end); then
 *         it sends rank 1 its result and waits for the answer.
 *
 * Rank 1 prints one line per step it sees and the result; what is printed depends only on
 * STEPS, so a run with MS 0 is the uninterrupted reference. Computing is a spin on the
 * monotonic clock, not a sleep, so that a signal cannot cut it short. */
#include <mpi.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 7) | (acc >> 57);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* About `ms` milliseconds of computing outside MPI; returns `acc` mixed with `step`. */
static uint64_t compute(uint64_t acc, long step, long ms) {
    double end = now_ms() + (double)ms;
    volatile uint64_t spin = 0;
    while (now_ms() < end) spin++;
    return mix(acc, (uint64_t)step);
}

static volatile sig_atomic_t own_calls = 0;

static void own_handler(int sig) {
    (void)sig;
    own_calls++;
}

int main(int argc, char **argv) {
    int own = argc > 1 && strcmp(argv[1], "own") == 0;
    if (own) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigaction(SIGRTMAX - 2, &sa, NULL);
    }
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *mode = argc > 1 ? argv[1] : "send";
    long steps = argc > 2 ? atol(argv[2]) : 60;
    long ms = argc > 3 ? atol(argv[3]) : 100;
    if (size != 2) {
        fprintf(stderr, "rare_calls needs 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    uint64_t acc = 1;
    if (strcmp(mode, "send") == 0 || own) {
        for (long step = 0; step < steps; step++) {
            if (rank == 0) {
                acc = compute(acc, step, ms);
                int v = (int)(acc & 0x7fffffff);
                MPI_Send(&v, 1, MPI_INT, 1, 7, MPI_COMM_WORLD);
            } else {
                int v;
                MPI_Recv(&v, 1, MPI_INT, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                acc = mix(acc, (uint64_t)v);
                printf("step %ld got %d\n", step, v);
            }
        }
    } else if (strcmp(mode, "test") == 0) {
        if (rank == 0) {
            uint64_t answer = 0;
            MPI_Request req;
            MPI_Irecv(&answer, 1, MPI_UINT64_T, 1, 9, MPI_COMM_WORLD, &req);
            long polls = 0;
            for (long step = 0; step < steps; step++) {
                acc = compute(acc, step, ms);
                int done = 0;
                MPI_Test(&req, &done, MPI_STATUS_IGNORE);
                if (done) {
                    fprintf(stderr, "rank 0: the answer came before the result was sent\n");
                    MPI_Abort(MPI_COMM_WORLD, 3);
                }
                polls++;
            }
            MPI_Send(&acc, 1, MPI_UINT64_T, 1, 8, MPI_COMM_WORLD);
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            acc = mix(answer, (uint64_t)polls);
        } else {
            uint64_t got;
            MPI_Recv(&got, 1, MPI_UINT64_T, 0, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            printf("step %ld got %llu\n", steps, (unsigned long long)got);
            acc = mix(got, 1);
            MPI_Send(&acc, 1, MPI_UINT64_T, 0, 9, MPI_COMM_WORLD);
        }
    } else {
        fprintf(stderr, "rare_calls: unknown mode %s\n", mode);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Bcast(&acc, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank == 1) printf("result %llu\n", (unsigned long long)acc);
    if (own && rank == 0) {
        struct sigaction now;
        sigaction(SIGRTMAX - 2, NULL, &now);
        printf("rank 0: own handler %s, ran %d times\n",
               now.sa_handler == own_handler ? "kept" : "replaced", (int)own_calls);
    }
    MPI_Finalize();
    return 0;
}
