/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, i, size, data[100];
    void *buf, *back;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Pack_size(100, MPI_INT, MPI_COMM_WORLD, &size);
    size = 4 * (size + MPI_BSEND_OVERHEAD);
    buf = malloc(size);
    MPI_Buffer_attach(buf, size);
    if (rank == 0) {
        for (i = 0; i < 3; i++) {
            int j;
            for (j = 0; j < 100; j++) data[j] = i * 1000 + j;
            MPI_Bsend(data, 100, MPI_INT, 1, i, MPI_COMM_WORLD);
        }
    } else {
        long s = 0;
        for (i = 2; i >= 0; i--) {
            MPI_Recv(data, 100, MPI_INT, 0, i, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            s += data[0] + data[99];
        }
        printf("received 3 buffered messages, sum %ld\n", s);
    }
    MPI_Buffer_detach(&back, &size);
    printf("rank %d detached the same buffer: %d\n", rank, back == buf);
    free(buf);
    MPI_Finalize();
    return 0;
}
