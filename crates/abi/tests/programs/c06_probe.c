/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, n, flag = 0, i;
    MPI_Status st;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 1) {
        long data[37];
        for (i = 0; i < 37; i++) data[i] = i * i;
        MPI_Send(data, 37, MPI_LONG, 0, 11, MPI_COMM_WORLD);
        MPI_Send(data, 3, MPI_LONG, 0, 12, MPI_COMM_WORLD);
    } else {
        long *buf, s = 0;
        MPI_Probe(1, 11, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, MPI_LONG, &n);
        buf = malloc(n * sizeof(long));
        MPI_Recv(buf, n, MPI_LONG, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (i = 0; i < n; i++) s += buf[i];
        while (!flag) MPI_Iprobe(MPI_ANY_SOURCE, 12, MPI_COMM_WORLD, &flag, &st);
        MPI_Get_count(&st, MPI_LONG, &i);
        MPI_Recv(buf, i, MPI_LONG, 1, 12, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("probed %d longs, sum %ld; then %d more from %d\n", n, s, i, st.MPI_SOURCE);
        free(buf);
    }
    MPI_Finalize();
    return 0;
}
