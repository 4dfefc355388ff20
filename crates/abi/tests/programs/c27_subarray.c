/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
/* A 2x3 block at (1,2) of a 4x6 array, C order; and the same shape in Fortran order. */
int main(int argc, char **argv) {
    int rank, i, j, a[4][6], sizes[2] = {4, 6}, subs[2] = {2, 3}, starts[2] = {1, 2};
    int fsizes[2] = {6, 4}, fsubs[2] = {3, 2}, fstarts[2] = {2, 1};
    MPI_Datatype sub, fsub;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_create_subarray(2, sizes, subs, starts, MPI_ORDER_C, MPI_INT, &sub);
    MPI_Type_commit(&sub);
    MPI_Type_create_subarray(2, fsizes, fsubs, fstarts, MPI_ORDER_FORTRAN, MPI_INT, &fsub);
    MPI_Type_commit(&fsub);
    for (i = 0; i < 4; i++) for (j = 0; j < 6; j++) a[i][j] = rank == 0 ? i * 10 + j : 0;
    if (rank == 0) {
        MPI_Send(a, 1, sub, 1, 0, MPI_COMM_WORLD);
        MPI_Send(a, 1, fsub, 1, 1, MPI_COMM_WORLD);
    } else {
        int flat[6];
        MPI_Recv(flat, 6, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("C order:");
        for (i = 0; i < 6; i++) printf(" %d", flat[i]);
        printf("\n");
        MPI_Recv(a, 1, fsub, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (i = 0; i < 4; i++) {
            for (j = 0; j < 6; j++) printf(" %2d", a[i][j]);
            printf("\n");
        }
    }
    MPI_Type_free(&sub);
    MPI_Type_free(&fsub);
    MPI_Finalize();
    return 0;
}
