/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, flag = 0, i, data[5], polls = 0;
    MPI_Request rb, rc;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (i = 0; i < 5; i++) data[i] = rank == 1 ? 10 * i : -1;
    MPI_Ibcast(data, 5, MPI_INT, 1, MPI_COMM_WORLD, &rc);
    MPI_Ibarrier(MPI_COMM_WORLD, &rb);
    while (!flag) { MPI_Test(&rb, &flag, MPI_STATUS_IGNORE); polls++; }
    MPI_Wait(&rc, MPI_STATUS_IGNORE);
    printf("rank %d: barrier done (polled %s), bcast %d %d %d %d %d\n", rank, polls > 0 ? "yes" : "no", data[0],
           data[1], data[2], data[3], data[4]);
    MPI_Finalize();
    return 0;
}
