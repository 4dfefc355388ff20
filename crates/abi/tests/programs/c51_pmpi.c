/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
/* A profiling layer: this program's MPI_Send and MPI_Allreduce count calls and forward to
   the PMPI_ entry points. */
static int sends, allreduces;
int MPI_Send(const void *buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm) {
    sends++;
    return PMPI_Send(buf, count, dt, dest, tag, comm);
}
int MPI_Allreduce(const void *s, void *r, int count, MPI_Datatype dt, MPI_Op op, MPI_Comm comm) {
    allreduces++;
    return PMPI_Allreduce(s, r, count, dt, op, comm);
}
int main(int argc, char **argv) {
    int rank, x = 0, i, sum;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (i = 0; i < 3; i++) {
        if (rank == 0) MPI_Send(&i, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
        else MPI_Recv(&x, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d: intercepted %d sends, %d allreduces, last %d, sum %d\n", rank, sends, allreduces, x, sum);
    MPI_Finalize();
    return 0;
}
