/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
/* Rank r sends ints to even ranks and doubles to odd ranks, with byte displacements. */
int main(int argc, char **argv) {
    int rank, size, i;
    char sbuf[256], rbuf[256];
    int sc[3], sd[3], rc[3], rd[3];
    MPI_Datatype st[3], rt[3];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < size; i++) {
        sd[i] = 64 * i; rd[i] = 64 * i;
        sc[i] = 2; rc[i] = 2;
        st[i] = (i % 2) ? MPI_DOUBLE : MPI_INT;
        rt[i] = (rank % 2) ? MPI_DOUBLE : MPI_INT;
        if (i % 2) { double *d = (double *)(sbuf + sd[i]); d[0] = rank + 0.25; d[1] = i + 0.5; }
        else { int *p = (int *)(sbuf + sd[i]); p[0] = rank * 10; p[1] = i; }
    }
    MPI_Alltoallw(sbuf, sc, sd, st, rbuf, rc, rd, rt, MPI_COMM_WORLD);
    for (i = 0; i < size; i++) {
        if (rank % 2) { double *d = (double *)(rbuf + rd[i]); printf("rank %d from %d: %.2f %.2f\n", rank, i, d[0], d[1]); }
        else { int *p = (int *)(rbuf + rd[i]); printf("rank %d from %d: %d %d\n", rank, i, p[0], p[1]); }
    }
    MPI_Finalize();
    return 0;
}
