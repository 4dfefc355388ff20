/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
/* A token goes around the ring three times; every rank adds its rank. */
int main(int argc, char **argv) {
    int rank, size, token = 0, lap;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (lap = 0; lap < 3; lap++) {
        if (rank == 0) {
            token += 1;
            MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, lap, MPI_COMM_WORLD);
            MPI_Recv(&token, 1, MPI_INT, size - 1, lap, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(&token, 1, MPI_INT, rank - 1, lap, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            token += rank;
            MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, lap, MPI_COMM_WORLD);
        }
    }
    if (rank == 0) printf("token after 3 laps: %d\n", token);
    MPI_Finalize();
    return 0;
}
