/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
/* Rank 0 blocks in MPI_Recv while its Ibcast must progress: rank 1 sends only after its
   Ibcast completed. */
int main(int argc, char **argv) {
    int rank, data = 0, reply = 0;
    MPI_Request r;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) data = 1234;
    MPI_Ibcast(&data, 1, MPI_INT, 0, MPI_COMM_WORLD, &r);
    if (rank == 0) {
        MPI_Recv(&reply, 1, MPI_INT, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        printf("rank 0 got reply %d\n", reply);
    } else {
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        reply = data + 1;
        MPI_Send(&reply, 1, MPI_INT, 0, 0, MPI_COMM_WORLD);
        printf("rank 1 got bcast %d\n", data);
    }
    MPI_Finalize();
    return 0;
}
