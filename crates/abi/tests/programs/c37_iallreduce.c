/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, v[3], s[3], m = 0, p = -1;
    double d, dmax;
    MPI_Request r[3];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    v[0] = rank; v[1] = rank * rank; v[2] = 7 - rank;
    d = rank * 1.25;
    MPI_Iallreduce(v, s, 3, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &r[0]);
    MPI_Ireduce(&d, &dmax, 1, MPI_DOUBLE, MPI_MAX, 2, MPI_COMM_WORLD, &r[1]);
    m = rank + 1;
    MPI_Iallreduce(MPI_IN_PLACE, &m, 1, MPI_INT, MPI_PROD, MPI_COMM_WORLD, &r[2]);
    MPI_Waitall(3, r, MPI_STATUSES_IGNORE);
    printf("rank %d: sum %d %d %d prod %d\n", rank, s[0], s[1], s[2], m);
    if (rank == 2) printf("max %.2f\n", dmax);
    (void)p;
    MPI_Finalize();
    return 0;
}
