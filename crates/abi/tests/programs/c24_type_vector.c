/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
/* Send column 2 of a 5x4 matrix into row storage on the other side. */
int main(int argc, char **argv) {
    int rank, i, j, count;
    double a[5][4], col[5];
    MPI_Datatype column, pair, cont;
    MPI_Status st;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_vector(5, 1, 4, MPI_DOUBLE, &column);
    MPI_Type_commit(&column);
    MPI_Type_contiguous(2, MPI_DOUBLE, &pair);
    MPI_Type_commit(&pair);
    MPI_Type_contiguous(3, pair, &cont);
    MPI_Type_commit(&cont);
    if (rank == 0) {
        for (i = 0; i < 5; i++) for (j = 0; j < 4; j++) a[i][j] = i * 10 + j;
        MPI_Send(&a[0][2], 1, column, 1, 0, MPI_COMM_WORLD);
        MPI_Send(&a[0][0], 2, pair, 1, 1, MPI_COMM_WORLD);
        MPI_Send(&a[1][0], 1, cont, 1, 2, MPI_COMM_WORLD);
    } else {
        MPI_Recv(col, 5, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, MPI_DOUBLE, &count);
        printf("column (%d):", count);
        for (i = 0; i < 5; i++) printf(" %.0f", col[i]);
        printf("\n");
        for (i = 0; i < 5; i++) for (j = 0; j < 4; j++) a[i][j] = -1;
        MPI_Recv(&a[0][1], 1, column, 0, 1, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, column, &count);
        printf("into column 1 (count %d):", count);
        for (i = 0; i < 5; i++) printf(" %.0f", a[i][1]);
        printf("\n");
        MPI_Recv(col, 3, pair, 0, 2, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, pair, &count);
        printf("pairs %d: %.0f %.0f\n", count, col[0], col[4]);
    }
    MPI_Type_free(&column);
    MPI_Type_free(&pair);
    MPI_Type_free(&cont);
    MPI_Finalize();
    return 0;
}
