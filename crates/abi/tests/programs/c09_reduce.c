/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, i, iv[4], ir[4];
    double dv[2], dr[2];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (i = 0; i < 4; i++) iv[i] = (rank + 1) * (i + 1) - 2 * rank;
    dv[0] = rank + 0.5; dv[1] = -rank * 1.25;
    MPI_Reduce(iv, ir, 4, MPI_INT, MPI_SUM, 1, MPI_COMM_WORLD);
    if (rank == 1) printf("sum %d %d %d %d\n", ir[0], ir[1], ir[2], ir[3]);
    MPI_Reduce(iv, ir, 4, MPI_INT, MPI_PROD, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("prod %d %d %d %d\n", ir[0], ir[1], ir[2], ir[3]);
    MPI_Reduce(iv, ir, 4, MPI_INT, MPI_MAX, 2, MPI_COMM_WORLD);
    if (rank == 2) printf("max %d %d %d %d\n", ir[0], ir[1], ir[2], ir[3]);
    MPI_Reduce(dv, dr, 2, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("min %.2f %.2f\n", dr[0], dr[1]);
    MPI_Reduce(dv, dr, 2, MPI_DOUBLE, MPI_SUM, 1, MPI_COMM_WORLD);
    if (rank == 1) printf("dsum %.2f %.2f\n", dr[0], dr[1]);
    if (rank == 0) MPI_Reduce(MPI_IN_PLACE, iv, 4, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    else MPI_Reduce(iv, NULL, 4, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("in place %d %d %d %d\n", iv[0], iv[1], iv[2], iv[3]);
    MPI_Finalize();
    return 0;
}
