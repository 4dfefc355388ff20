/* Path length of a small-message round trip, for bench/pathlen.
 *
 * Usage: pathlen FLAG_FILE [BYTES [ITERS]] (defaults 8 and 2000). FLAG_FILE
 * is a new file name (in /dev/shm, say) that both ranks map.
 *
 * Rank 1 echoes every message back (MPI_Recv then MPI_Send) and after each
 * send stores the number of echoes so far in the mapped flag file. Rank 0, per
 * iteration, sends a message with MPI_Send (in pathlen_send), waits outside
 * MPI until the flag says the echo was sent, and receives it with MPI_Recv (in
 * pathlen_recv). bench/pathlen runs rank 0 under callgrind with
 * --toggle-collect on those two functions, so the instruction count covers
 * exactly ITERS blocking sends and ITERS blocking receives whose message is
 * already there: what one rank executes per ping-pong round trip, without the
 * polling while the peer answers (which depends on the machine's load, not on
 * the code: a fixed pause instead of the flag still met late echoes whenever
 * rank 1 lost its core). The warm-up round trips call MPI directly and are not counted. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define TAG 1
#define WARMUP 200

__attribute__((noinline)) void pathlen_send(char *buf, int n) {
    if (MPI_Send(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD) != MPI_SUCCESS) {
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

__attribute__((noinline)) void pathlen_recv(char *buf, int n) {
    if (MPI_Recv(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* Maps FLAG_FILE (created by whichever rank comes first) as one shared long. */
static volatile long *map_flag(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(long)) != 0) {
        perror("pathlen: flag file");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    void *p = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("pathlen: mmap");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    close(fd);
    return p;
}

/* Waits, without MPI, until rank 1 has sent its `n`-th echo. */
static void wait_for_echo(volatile long *flag, long n) {
    struct timespec ts = {0, 20000};
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < n) {
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int n = argc > 2 ? atoi(argv[2]) : 8;
    long iters = argc > 3 ? atol(argv[3]) : 2000;
    if (size != 2 || argc < 2 || n < 0 || iters < 1) {
        fprintf(stderr, "usage: pathlen FLAG_FILE [BYTES >= 0 [ITERS >= 1]] on 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    volatile long *flag = map_flag(argv[1]);
    MPI_Barrier(MPI_COMM_WORLD);
    char *buf = calloc((size_t)n + 1, 1);
    for (long i = 0; i < WARMUP + iters; i++) {
        if (rank == 0 && i < WARMUP) {
            MPI_Send(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD);
            MPI_Recv(buf, n, MPI_BYTE, 1, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 0) {
            pathlen_send(buf, n);
            wait_for_echo(flag, i + 1);
            pathlen_recv(buf, n);
        } else {
            MPI_Recv(buf, n, MPI_BYTE, 0, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, n, MPI_BYTE, 0, TAG, MPI_COMM_WORLD);
            __atomic_store_n(flag, i + 1, __ATOMIC_RELEASE);
        }
    }
    if (rank == 0) {
        printf("pathlen: %ld round trips of %d B\n", iters, n);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
