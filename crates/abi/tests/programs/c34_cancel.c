/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, x = 0, flag = 0, y = 5;
    MPI_Request r;
    MPI_Status st;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* A receive nobody sends to, cancelled. */
    MPI_Irecv(&x, 1, MPI_INT, 1 - rank, 99, MPI_COMM_WORLD, &r);
    MPI_Cancel(&r);
    MPI_Wait(&r, &st);
    MPI_Test_cancelled(&st, &flag);
    printf("rank %d cancelled %d request null %d\n", rank, flag, r == MPI_REQUEST_NULL);
    /* A receive that completes is not cancelled. */
    if (rank == 0) {
        MPI_Irecv(&x, 1, MPI_INT, 1, 1, MPI_COMM_WORLD, &r);
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Wait(&r, &st);
        MPI_Test_cancelled(&st, &flag);
        printf("completed receive got %d, cancelled %d\n", x, flag);
    } else {
        MPI_Send(&y, 1, MPI_INT, 0, 1, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
