/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, j, buf[8], count, total = 0, seen = 0;
    MPI_Status st;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) {
        for (i = 1; i < size; i++) {
            MPI_Recv(buf, 8, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            MPI_Get_count(&st, MPI_INT, &count);
            if (st.MPI_TAG != st.MPI_SOURCE * 7 || count != st.MPI_SOURCE) printf("mismatch\n");
            for (j = 0; j < count; j++) total += buf[j];
            seen |= 1 << st.MPI_SOURCE;
        }
        printf("total %d seen mask %d\n", total, seen);
    } else {
        for (i = 0; i < rank; i++) buf[i] = rank * 100 + i;
        MPI_Send(buf, rank, MPI_INT, 0, rank * 7, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
