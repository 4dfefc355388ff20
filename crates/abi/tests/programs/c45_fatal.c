/* ranks: 2
   expect: fail */
#include <mpi.h>
#include <stdio.h>
/* ERRORS_ARE_FATAL (the default): an invalid rank aborts the whole job. */
int main(int argc, char **argv) {
    int rank, x = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 1) MPI_Send(&x, 1, MPI_INT, 9, 0, MPI_COMM_WORLD);
    else MPI_Recv(&x, 1, MPI_INT, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("not reached\n");
    MPI_Finalize();
    return 0;
}
