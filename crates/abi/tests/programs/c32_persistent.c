/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, i, out, in = 0, total = 0;
    MPI_Request r[2];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Send_init(&out, 1, MPI_INT, 1 - rank, 3, MPI_COMM_WORLD, &r[0]);
    MPI_Recv_init(&in, 1, MPI_INT, 1 - rank, 3, MPI_COMM_WORLD, &r[1]);
    for (i = 0; i < 5; i++) {
        out = rank * 100 + i;
        MPI_Startall(2, r);
        MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
        total += in;
    }
    printf("rank %d persistent total %d, still allocated %d\n", rank, total, r[0] != MPI_REQUEST_NULL);
    MPI_Start(&r[1]);
    if (rank == 0) { out = 77; MPI_Start(&r[0]); MPI_Wait(&r[0], MPI_STATUS_IGNORE); }
    else { out = 88; MPI_Start(&r[0]); MPI_Wait(&r[0], MPI_STATUS_IGNORE); }
    MPI_Wait(&r[1], MPI_STATUS_IGNORE);
    printf("rank %d last %d\n", rank, in);
    MPI_Request_free(&r[0]);
    MPI_Request_free(&r[1]);
    MPI_Finalize();
    return 0;
}
