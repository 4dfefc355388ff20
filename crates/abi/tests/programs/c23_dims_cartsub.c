/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, i, n, d2[2], d3[3], d3b[3] = {0, 3, 0};
    int dims[2] = {2, 2}, periods[2] = {0, 0}, remain[2] = {0, 1}, sr, ss, sum;
    int sizes[] = {1, 4, 6, 12, 16, 30, 64};
    MPI_Comm cart, row;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        for (i = 0; i < 7; i++) {
            n = sizes[i];
            d2[0] = d2[1] = 0;
            d3[0] = d3[1] = d3[2] = 0;
            MPI_Dims_create(n, 2, d2);
            MPI_Dims_create(n, 3, d3);
            printf("%d: %dx%d %dx%dx%d\n", n, d2[0], d2[1], d3[0], d3[1], d3[2]);
        }
        MPI_Dims_create(12, 3, d3b);
        printf("12 with middle 3: %dx%dx%d\n", d3b[0], d3b[1], d3b[2]);
    }
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
    MPI_Cart_sub(cart, remain, &row);
    MPI_Comm_rank(row, &sr);
    MPI_Comm_size(row, &ss);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, row);
    printf("rank %d: row rank %d of %d, row sum %d\n", rank, sr, ss, sum);
    MPI_Comm_free(&row);
    MPI_Comm_free(&cart);
    MPI_Finalize();
    return 0;
}
