/* threaded STEPS PAUSE_MS: an MPI program with a second thread (it only sleeps), which the
 * image checkpointer cannot save. Rank 0 prints one line per step and a sum at the end. */
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *idle(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 10;
    long pause = argc > 2 ? atol(argv[2]) : 0;
    int rank;
    pthread_t thread;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (pthread_create(&thread, NULL, idle, NULL) != 0) {
        fprintf(stderr, "threaded: pthread_create failed\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    long sum = 0;
    for (long s = 1; s <= steps; s++) {
        long mine = s * (rank + 1), total = 0;
        MPI_Allreduce(&mine, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        sum += total;
        if (rank == 0) {
            printf("step %ld %ld\n", s, total);
            fflush(stdout);
        }
        if (pause > 0) {
            struct timespec ts = {pause / 1000, (pause % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (rank == 0) {
        printf("sum %ld\n", sum);
    }
    MPI_Finalize();
    return 0;
}
