/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, v[2], x = 0;
    MPI_Status st;
    MPI_Request r;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    v[0] = rank; v[1] = rank * 3;
    MPI_Sendrecv_replace(v, 2, MPI_INT, (rank + 1) % size, 4, (rank + size - 1) % size, 4, MPI_COMM_WORLD, &st);
    printf("rank %d replaced: %d %d from %d\n", rank, v[0], v[1], st.MPI_SOURCE);
    if (rank == 0) {
        MPI_Ssend(v, 2, MPI_INT, 1, 5, MPI_COMM_WORLD);
        MPI_Issend(v, 1, MPI_INT, 2, 6, MPI_COMM_WORLD, &r);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
        MPI_Recv(v, 2, MPI_INT, 0, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("ssend delivered %d %d\n", v[0], v[1]);
    } else {
        MPI_Recv(&x, 1, MPI_INT, 0, 6, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("issend delivered %d\n", x);
    }
    /* ready send: the receive is posted before the barrier */
    if (rank == 2) {
        MPI_Irecv(&x, 1, MPI_INT, 1, 7, MPI_COMM_WORLD, &r);
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        printf("rsend delivered %d\n", x);
    } else {
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 1) { x = 4242; MPI_Rsend(&x, 1, MPI_INT, 2, 7, MPI_COMM_WORLD); }
    }
    MPI_Finalize();
    return 0;
}
