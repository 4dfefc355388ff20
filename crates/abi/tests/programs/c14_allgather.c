/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, all[12], counts[3] = {1, 3, 2}, displs[3] = {0, 2, 6};
    double d = 0, dd[3];
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    d = rank * 1.5;
    MPI_Allgather(&d, 1, MPI_DOUBLE, dd, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    printf("rank %d allgather %.1f %.1f %.1f\n", rank, dd[0], dd[1], dd[2]);
    for (i = 0; i < 12; i++) all[i] = -1;
    int mine[3] = {rank * 100, rank * 100 + 1, rank * 100 + 2};
    MPI_Allgatherv(mine, counts[rank], MPI_INT, all, counts, displs, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d allgatherv:", rank);
    for (i = 0; i < 8; i++) printf(" %d", all[i]);
    printf("\n");
    for (i = 0; i < 12; i++) all[i] = (i / 4 == rank) ? rank + i : 0;
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, 4, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d in place:", rank);
    for (i = 0; i < 12; i++) printf(" %d", all[i]);
    printf("\n");
    MPI_Finalize();
    return 0;
}
