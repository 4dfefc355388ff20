/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank;
    struct { double v; int i; } d, dmin, dmax;
    struct { int v; int i; } p, pmin;
    struct { float v; int i; } f, fmax;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    d.v = (rank % 2) ? 3.5 : -1.0 * rank; d.i = rank;
    MPI_Allreduce(&d, &dmin, 1, MPI_DOUBLE_INT, MPI_MINLOC, MPI_COMM_WORLD);
    MPI_Allreduce(&d, &dmax, 1, MPI_DOUBLE_INT, MPI_MAXLOC, MPI_COMM_WORLD);
    p.v = 7; p.i = 10 - rank;
    MPI_Reduce(&p, &pmin, 1, MPI_2INT, MPI_MINLOC, 0, MPI_COMM_WORLD);
    f.v = (float)(rank * rank) - 2.0f * rank; f.i = rank;
    MPI_Allreduce(&f, &fmax, 1, MPI_FLOAT_INT, MPI_MAXLOC, MPI_COMM_WORLD);
    printf("rank %d: min %.1f@%d max %.1f@%d fmax %.1f@%d\n", rank, dmin.v, dmin.i, dmax.v, dmax.i, fmax.v, fmax.i);
    if (rank == 0) printf("2int minloc tie: %d@%d\n", pmin.v, pmin.i);
    MPI_Finalize();
    return 0;
}
