/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
/* A struct type over absolute addresses, sent from MPI_BOTTOM; and an hindexed type. */
int main(int argc, char **argv) {
    int rank, n = 0, lens[2] = {1, 2};
    double vals[2] = {0, 0};
    MPI_Aint addrs[2], hd[2] = {0, 24};
    MPI_Datatype types[2] = {MPI_INT, MPI_DOUBLE}, abs_t, hi;
    double row[6] = {0, 1, 2, 3, 4, 5}, got[3];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Get_address(&n, &addrs[0]);
    MPI_Get_address(vals, &addrs[1]);
    MPI_Type_create_struct(2, lens, addrs, types, &abs_t);
    MPI_Type_commit(&abs_t);
    MPI_Type_create_hindexed(2, lens, hd, MPI_DOUBLE, &hi);
    MPI_Type_commit(&hi);
    if (rank == 0) {
        n = 42; vals[0] = 0.5; vals[1] = 1.5;
        MPI_Send(MPI_BOTTOM, 1, abs_t, 1, 0, MPI_COMM_WORLD);
        MPI_Send(row, 1, hi, 1, 1, MPI_COMM_WORLD);
    } else {
        MPI_Recv(MPI_BOTTOM, 1, abs_t, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(got, 3, MPI_DOUBLE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("bottom: %d %.1f %.1f; hindexed: %.0f %.0f %.0f\n", n, vals[0], vals[1], got[0], got[1], got[2]);
    }
    MPI_Type_free(&abs_t);
    MPI_Type_free(&hi);
    MPI_Finalize();
    return 0;
}
