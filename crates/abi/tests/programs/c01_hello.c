/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, v, sv, flag, provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Initialized(&flag);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_version(&v, &sv);
    printf("rank %d of %d, initialized %d, version>=3 %d, funneled-or-better %d\n", rank, size, flag,
           v >= 3, provided >= MPI_THREAD_FUNNELED);
    MPI_Finalize();
    MPI_Finalized(&flag);
    printf("rank %d finalized %d\n", rank, flag);
    return 0;
}
