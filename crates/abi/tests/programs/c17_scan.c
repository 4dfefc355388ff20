/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, v, s, e = -999, m;
    double d, ds;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    v = rank + 1;
    MPI_Scan(&v, &s, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Exscan(&v, &e, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Scan(&v, &m, 1, MPI_INT, MPI_PROD, MPI_COMM_WORLD);
    d = 0.5 * rank;
    MPI_Scan(&d, &ds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) e = 0;
    printf("rank %d scan %d exscan %d prod %d max %.1f\n", rank, s, e, m, ds);
    v = 2 * rank;
    MPI_Scan(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d in place %d\n", rank, v);
    MPI_Finalize();
    return 0;
}
