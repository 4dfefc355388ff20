/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
/* A message on a duplicate never matches a receive on the original. */
int main(int argc, char **argv) {
    int rank, a = -1, b = -1, res1, res2, res3;
    MPI_Comm dup;
    MPI_Request r;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    MPI_Comm_compare(MPI_COMM_WORLD, dup, &res1);
    MPI_Comm_compare(dup, dup, &res2);
    MPI_Comm_compare(MPI_COMM_WORLD, MPI_COMM_SELF, &res3);
    if (rank == 0) {
        int x = 1, y = 2;
        MPI_Send(&x, 1, MPI_INT, 1, 0, dup);
        MPI_Send(&y, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
    } else if (rank == 1) {
        MPI_Irecv(&a, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, &r);
        MPI_Recv(&b, 1, MPI_INT, 0, 0, dup, MPI_STATUS_IGNORE);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        printf("world got %d, dup got %d\n", a, b);
    }
    printf("rank %d: congruent %d ident %d self-unequal %d\n", rank, res1 == MPI_CONGRUENT, res2 == MPI_IDENT,
           res3 == MPI_UNEQUAL);
    MPI_Comm_free(&dup);
    MPI_Finalize();
    return 0;
}
