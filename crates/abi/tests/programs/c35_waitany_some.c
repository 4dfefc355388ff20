/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, idx, n, got = 0, vals[4], indices[4], sum = 0, flag;
    MPI_Request r[4];
    MPI_Status st[4];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) {
        for (i = 1; i < size; i++) MPI_Irecv(&vals[i], 1, MPI_INT, i, 0, MPI_COMM_WORLD, &r[i]);
        r[0] = MPI_REQUEST_NULL;
        MPI_Waitany(size, r, &idx, &st[0]);
        sum += vals[idx];
        got++;
        while (got < size - 1) {
            MPI_Waitsome(size, r, &n, indices, st);
            for (i = 0; i < n; i++) { sum += vals[indices[i]]; if (st[i].MPI_SOURCE != indices[i]) printf("bad source\n"); }
            got += n;
        }
        MPI_Waitany(size, r, &idx, MPI_STATUS_IGNORE);
        MPI_Testall(size, r, &flag, MPI_STATUSES_IGNORE);
        printf("sum %d, waitany on nothing gives undefined %d, testall flag %d\n", sum, idx == MPI_UNDEFINED, flag);
    } else {
        int v = rank * 11;
        MPI_Send(&v, 1, MPI_INT, 0, 0, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
