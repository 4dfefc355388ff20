/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, i, buf[16], lens[3] = {2, 1, 3}, displs[3] = {0, 5, 9}, bd[3] = {1, 7, 12};
    MPI_Datatype idx, blk;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_indexed(3, lens, displs, MPI_INT, &idx);
    MPI_Type_commit(&idx);
    MPI_Type_create_indexed_block(3, 2, bd, MPI_INT, &blk);
    MPI_Type_commit(&blk);
    for (i = 0; i < 16; i++) buf[i] = rank == 0 ? i : -1;
    if (rank == 0) {
        MPI_Send(buf, 1, idx, 1, 0, MPI_COMM_WORLD);
        MPI_Send(buf, 1, blk, 1, 1, MPI_COMM_WORLD);
    } else {
        int packed[6];
        MPI_Recv(packed, 6, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("indexed:");
        for (i = 0; i < 6; i++) printf(" %d", packed[i]);
        printf("\n");
        MPI_Recv(buf, 1, blk, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("indexed block:");
        for (i = 0; i < 16; i++) printf(" %d", buf[i]);
        printf("\n");
    }
    MPI_Type_free(&idx);
    MPI_Type_free(&blk);
    MPI_Finalize();
    return 0;
}
