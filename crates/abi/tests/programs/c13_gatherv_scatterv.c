/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, counts[4], displs[4], mine[4], all[20], got[4];
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < size; i++) { counts[i] = i + 1; displs[i] = 5 * i; }
    for (i = 0; i <= rank; i++) mine[i] = rank * 10 + i;
    for (i = 0; i < 20; i++) all[i] = 0;
    MPI_Gatherv(mine, rank + 1, MPI_INT, all, counts, displs, MPI_INT, 1, MPI_COMM_WORLD);
    if (rank == 1) { printf("gatherv:"); for (i = 0; i < 20; i++) printf(" %d", all[i]); printf("\n"); }
    for (i = 0; i < 20; i++) all[i] = i;
    MPI_Scatterv(all, counts, displs, MPI_INT, got, rank + 1, MPI_INT, 0, MPI_COMM_WORLD);
    printf("rank %d scatterv:", rank);
    for (i = 0; i <= rank; i++) printf(" %d", got[i]);
    printf("\n");
    MPI_Finalize();
    return 0;
}
