/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, flag = 0, n = 200000, i, idx;
    long s = 0;
    MPI_Request r;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int *buf = malloc(n * sizeof(int));
    if (rank == 0) {
        for (i = 0; i < n; i++) buf[i] = i % 97;
        MPI_Isend(buf, n, MPI_INT, 1, 0, MPI_COMM_WORLD, &r);
        while (!flag) MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
        printf("send completed, request null %d\n", r == MPI_REQUEST_NULL);
    } else {
        MPI_Irecv(buf, n, MPI_INT, 0, 0, MPI_COMM_WORLD, &r);
        do { MPI_Testany(1, &r, &idx, &flag, MPI_STATUS_IGNORE); } while (!flag);
        for (i = 0; i < n; i++) s += buf[i];
        printf("received sum %ld index %d\n", s, idx);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
