/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, count;
    double out[5], in[5];
    MPI_Status st;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < 5; i++) out[i] = rank * 10 + i;
    MPI_Sendrecv(out, 5 - rank, MPI_DOUBLE, (rank + 1) % size, 100 + rank,
                 in, 5, MPI_DOUBLE, (rank + size - 1) % size, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_DOUBLE, &count);
    printf("rank %d: from %d tag %d count %d first %.1f last %.1f\n", rank, st.MPI_SOURCE, st.MPI_TAG,
           count, in[0], in[count - 1]);
    MPI_Finalize();
    return 0;
}
