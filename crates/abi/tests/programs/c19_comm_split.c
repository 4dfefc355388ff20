/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, sub_rank, sub_size, sum, result;
    MPI_Comm sub, none;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* reverse order within each colour via the key */
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &sub);
    MPI_Comm_rank(sub, &sub_rank);
    MPI_Comm_size(sub, &sub_size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, sub);
    MPI_Comm_compare(MPI_COMM_WORLD, sub, &result);
    printf("rank %d colour %d: sub rank %d of %d, sum %d, unequal %d\n", rank, rank % 2, sub_rank, sub_size, sum,
           result == MPI_UNEQUAL);
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &none);
    printf("rank %d: in second split %d\n", rank, none != MPI_COMM_NULL);
    if (none != MPI_COMM_NULL) MPI_Comm_free(&none);
    MPI_Comm_free(&sub);
    printf("rank %d: freed %d\n", rank, sub == MPI_COMM_NULL);
    MPI_Finalize();
    return 0;
}
