/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, mine[2], all[8], part[2], src[8];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mine[0] = rank; mine[1] = rank * rank;
    MPI_Gather(mine, 2, MPI_INT, all, 2, MPI_INT, 3, MPI_COMM_WORLD);
    if (rank == 3) { printf("gather:"); for (i = 0; i < 2 * size; i++) printf(" %d", all[i]); printf("\n"); }
    for (i = 0; i < 8; i++) src[i] = 50 + i;
    MPI_Scatter(src, 2, MPI_INT, part, 2, MPI_INT, 1, MPI_COMM_WORLD);
    printf("rank %d scatter: %d %d\n", rank, part[0], part[1]);
    /* in place at the root */
    for (i = 0; i < 8; i++) all[i] = -1;
    all[2 * rank] = rank + 100; all[2 * rank + 1] = rank + 200;
    if (rank == 0) MPI_Gather(MPI_IN_PLACE, 2, MPI_INT, all, 2, MPI_INT, 0, MPI_COMM_WORLD);
    else MPI_Gather(&all[2 * rank], 2, MPI_INT, NULL, 0, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) { printf("gather in place:"); for (i = 0; i < 8; i++) printf(" %d", all[i]); printf("\n"); }
    if (rank == 2) MPI_Scatter(src, 2, MPI_INT, MPI_IN_PLACE, 2, MPI_INT, 2, MPI_COMM_WORLD);
    else MPI_Scatter(NULL, 0, MPI_INT, part, 2, MPI_INT, 2, MPI_COMM_WORLD);
    if (rank != 2) printf("rank %d scatter from 2: %d %d\n", rank, part[0], part[1]);
    MPI_Finalize();
    return 0;
}
