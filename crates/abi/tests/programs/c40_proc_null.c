/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, x = 3, count = -1, flag;
    MPI_Status st;
    MPI_Request r[2];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Send(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD);
    MPI_Recv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_INT, &count);
    printf("rank %d: proc null recv source %d tag %d count %d x %d\n", rank, st.MPI_SOURCE == MPI_PROC_NULL,
           st.MPI_TAG == MPI_ANY_TAG, count, x);
    MPI_Isend(&x, 1, MPI_INT, MPI_PROC_NULL, 1, MPI_COMM_WORLD, &r[0]);
    MPI_Irecv(&x, 1, MPI_INT, MPI_PROC_NULL, 1, MPI_COMM_WORLD, &r[1]);
    MPI_Testall(2, r, &flag, MPI_STATUSES_IGNORE);
    printf("rank %d: proc null requests complete at once %d\n", rank, flag);
    MPI_Sendrecv(&rank, 1, MPI_INT, rank == 0 ? 1 : MPI_PROC_NULL, 0, &x, 1, MPI_INT, rank == 1 ? 0 : MPI_PROC_NULL,
                 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("rank %d: x %d\n", rank, x);
    MPI_Finalize();
    return 0;
}
