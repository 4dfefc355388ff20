/* forked_child STEPS [PAUSE_MS]: an MPI program that forks. The ranks pass a running checksum
 * around a ring STEPS times, each sleeping PAUSE_MS milliseconds per step; rank 0 prints one
 * line per step and the result at the end.
 *
 * At step 1 rank 0 forks a child that sleeps for one second and exits with status 7 (it calls
 * nothing of MPI: `_exit`), and says "forked" on stderr. At every later step it looks for the
 * child's end without waiting; after the last step it waits for it if need be, and prints its
 * status. An image holds one process: a rank restored from an image taken while the child
 * lived would have no child to wait for, which this program reports and exits 3 for.
 * What is printed depends only on STEPS, so a run with PAUSE_MS 0 is the reference. */
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t acc, uint64_t v) {
    uint64_t r = (acc << 9) | (acc >> 55);
    return (r ^ v) * 0x100000001b3ULL + 0x9e3779b9ULL;
}

/* The child's exit status once it has ended and been waited for, -1 while it lives. */
static int reap(pid_t child, int options) {
    int status;
    pid_t r;
    do {
        r = waitpid(child, &status, options);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        fprintf(stderr, "the forked child %d is lost: %s\n", (int)child,
                errno == ECHILD ? "this process has no such child" : "waitpid failed");
        exit(3);
    }
    if (r == 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
    pid_t child = 0;
    int status = -1;
    for (long step = 0; step < steps; step++) {
        if (rank == 0 && step == 1) {
            fflush(NULL);
            child = fork();
            if (child < 0) {
                perror("fork");
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
            if (child == 0) {
                sleep(1);
                _exit(7);
            }
            fprintf(stderr, "forked\n");
        }
        if (child > 0 && status < 0) status = reap(child, WNOHANG);
        uint64_t carried;
        MPI_Sendrecv(&acc, 1, MPI_UINT64_T, next, 1, &carried, 1, MPI_UINT64_T, prev, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        acc = mix(acc, carried ^ (uint64_t)step);
        if (rank == 0) printf("step %ld %016llx\n", step, (unsigned long long)acc);
        if (pause > 0) {
            struct timespec t = {pause / 1000, (pause % 1000) * 1000000L};
            nanosleep(&t, NULL);
        }
    }
    if (child > 0 && status < 0) status = reap(child, 0);
    uint64_t sum = 0;
    MPI_Allreduce(&acc, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("the forked child exited with status %d\n", status);
        printf("result %016llx\n", (unsigned long long)sum);
    }
    MPI_Finalize();
    return 0;
}
