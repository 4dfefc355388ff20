/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, in[10], out[4], counts[4] = {1, 2, 3, 4};
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < 10; i++) in[i] = i * (rank + 1);
    MPI_Reduce_scatter(in, out, counts, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d reduce_scatter:", rank);
    for (i = 0; i < counts[rank]; i++) printf(" %d", out[i]);
    printf("\n");
    MPI_Reduce_scatter_block(in, out, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    printf("rank %d block: %d %d\n", rank, out[0], out[1]);
    MPI_Finalize();
    return 0;
}
