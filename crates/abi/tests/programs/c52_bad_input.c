/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
static void check(const char *what, int rc, int want) {
    int cls = -1;
    if (rc != MPI_SUCCESS) MPI_Error_class(rc, &cls);
    printf("%-26s %s\n", what, cls == want ? "right class" : "WRONG");
}
int main(int argc, char **argv) {
    int rank, x[4] = {0, 0, 0, 0}, req;
    MPI_Datatype t, predefined = MPI_INT;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rank == 0) {
        check("null buffer, count 3", MPI_Send(NULL, 3, MPI_INT, 1, 0, MPI_COMM_WORLD), MPI_ERR_BUFFER);
        MPI_Type_contiguous(2, MPI_INT, &t);
        check("uncommitted datatype", MPI_Send(x, 1, t, 1, 0, MPI_COMM_WORLD), MPI_ERR_TYPE);
        MPI_Type_free(&t);
        check("datatype as communicator", MPI_Send(x, 1, MPI_INT, 1, 0, (MPI_Comm)MPI_INT), MPI_ERR_COMM);
        check("bcast negative count", MPI_Bcast(x, -2, MPI_INT, 0, MPI_COMM_WORLD), MPI_ERR_COUNT);
        check("free predefined type", MPI_Type_free(&predefined), MPI_ERR_TYPE);
        check("irecv negative tag ", MPI_Irecv(x, 1, MPI_INT, 1, -7, MPI_COMM_WORLD, &req), MPI_ERR_TAG);
        check("comm split of null", MPI_Comm_split(MPI_COMM_NULL, 0, 0, &req), MPI_ERR_COMM);
        check("cart rank non-cart", MPI_Cart_rank(MPI_COMM_WORLD, x, &req), MPI_ERR_TOPOLOGY);
        check("allreduce null sendbuf", MPI_Allreduce(NULL, x, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD), MPI_ERR_BUFFER);
        check("group incl bad rank", MPI_Group_incl(MPI_GROUP_EMPTY, 1, x, &req), MPI_ERR_RANK);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    printf("rank %d done\n", rank);
    MPI_Finalize();
    return 0;
}
