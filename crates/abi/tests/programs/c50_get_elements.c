/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, count, elems, lens[2] = {1, 1};
    MPI_Aint displs[2] = {0, 8};
    MPI_Datatype types[2] = {MPI_INT, MPI_DOUBLE}, pair;
    MPI_Status st;
    char buf[64];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_create_struct(2, lens, displs, types, &pair);
    MPI_Type_commit(&pair);
    if (rank == 0) {
        int ints[4] = {1, 2, 3, 4};
        MPI_Send(buf, 2, pair, 1, 0, MPI_COMM_WORLD);
        MPI_Send(ints, 3, MPI_INT, 1, 1, MPI_COMM_WORLD);
    } else {
        MPI_Recv(buf, 4, pair, 0, 0, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, pair, &count);
        MPI_Get_elements(&st, pair, &elems);
        printf("pairs: count %d elements %d\n", count, elems);
        MPI_Recv(buf, 16, MPI_INT, 0, 1, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, MPI_INT, &count);
        MPI_Get_count(&st, MPI_DOUBLE, &elems);
        printf("ints: count %d as doubles undefined %d\n", count, elems == MPI_UNDEFINED);
    }
    MPI_Type_free(&pair);
    MPI_Finalize();
    return 0;
}
