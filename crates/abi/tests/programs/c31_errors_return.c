/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
static void check(const char *what, int rc, int want) {
    int cls;
    MPI_Error_class(rc, &cls);
    printf("%-18s %s\n", what, rc != MPI_SUCCESS && cls == want ? "right class" : "WRONG");
}
int main(int argc, char **argv) {
    int rank, x = 1, eh_ok, len;
    char msg[MPI_MAX_ERROR_STRING];
    MPI_Errhandler eh;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh);
    eh_ok = eh == MPI_ERRORS_RETURN;
    if (rank == 0) {
        printf("errhandler is ERRORS_RETURN: %d\n", eh_ok);
        check("rank out of range", MPI_Send(&x, 1, MPI_INT, 9, 0, MPI_COMM_WORLD), MPI_ERR_RANK);
        check("negative count", MPI_Send(&x, -1, MPI_INT, 1, 0, MPI_COMM_WORLD), MPI_ERR_COUNT);
        check("negative tag", MPI_Send(&x, 1, MPI_INT, 1, -5, MPI_COMM_WORLD), MPI_ERR_TAG);
        check("null datatype", MPI_Send(&x, 1, MPI_DATATYPE_NULL, 1, 0, MPI_COMM_WORLD), MPI_ERR_TYPE);
        check("null communicator", MPI_Send(&x, 1, MPI_INT, 1, 0, MPI_COMM_NULL), MPI_ERR_COMM);
        check("bad root", MPI_Bcast(&x, 1, MPI_INT, 7, MPI_COMM_WORLD), MPI_ERR_ROOT);
        check("null op", MPI_Reduce(&x, &x, 1, MPI_INT, MPI_OP_NULL, 0, MPI_COMM_WORLD), MPI_ERR_OP);
        check("recv rank", MPI_Recv(&x, 1, MPI_INT, 5, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE), MPI_ERR_RANK);
        MPI_Error_string(MPI_ERR_RANK, msg, &len);
        printf("error string has text: %d\n", len > 0 && (int)strlen(msg) == len);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    printf("rank %d still alive\n", rank);
    MPI_Finalize();
    return 0;
}
