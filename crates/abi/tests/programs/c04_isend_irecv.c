/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
/* Every rank sends one value to every rank (itself included) with non-blocking calls. */
int main(int argc, char **argv) {
    int rank, size, i, sum = 0;
    int out[16], in[16];
    MPI_Request reqs[32];
    MPI_Status sts[32];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < size; i++) {
        out[i] = 100 * rank + i;
        MPI_Irecv(&in[i], 1, MPI_INT, i, 5, MPI_COMM_WORLD, &reqs[i]);
    }
    for (i = 0; i < size; i++) MPI_Isend(&out[i], 1, MPI_INT, i, 5, MPI_COMM_WORLD, &reqs[size + i]);
    MPI_Waitall(2 * size, reqs, sts);
    for (i = 0; i < size; i++) {
        sum += in[i];
        if (sts[i].MPI_SOURCE != i) printf("rank %d: bad source %d\n", rank, sts[i].MPI_SOURCE);
        if (reqs[i] != MPI_REQUEST_NULL) printf("rank %d: request not null\n", rank);
    }
    printf("rank %d: sum of received %d\n", rank, sum);
    MPI_Finalize();
    return 0;
}
