/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, j, out[16], in[16], sc[4], sd[4], rc[4], rd[4];
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (i = 0; i < 2 * size; i++) out[i] = rank * 100 + i;
    MPI_Alltoall(out, 2, MPI_INT, in, 2, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d alltoall:", rank);
    for (i = 0; i < 2 * size; i++) printf(" %d", in[i]);
    printf("\n");
    /* rank r sends j+1 ints to rank j */
    for (j = 0, i = 0; j < size; j++) { sc[j] = j + 1; sd[j] = i; i += j + 1; }
    for (j = 0, i = 0; j < size; j++) { rc[j] = rank + 1; rd[j] = i; i += rank + 1; }
    for (i = 0; i < 16; i++) { out[i] = rank * 1000 + i; in[i] = -1; }
    MPI_Alltoallv(out, sc, sd, MPI_INT, in, rc, rd, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d alltoallv:", rank);
    for (i = 0; i < size * (rank + 1); i++) printf(" %d", in[i]);
    printf("\n");
    /* Blocks in reverse rank order, with gaps, some empty: rank r sends (r + j) % 3 ints to j. */
    for (j = 0; j < size; j++) {
        sc[j] = rc[j] = (rank + j) % 3;
        sd[j] = 3 * (size - 1 - j);
        rd[j] = 1 + 3 * (size - 1 - j);
    }
    for (i = 0; i < 16; i++) { out[i] = rank * 1000 + i; in[i] = -1; }
    MPI_Alltoallv(out, sc, sd, MPI_INT, in, rc, rd, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d alltoallv gaps:", rank);
    for (i = 0; i < 16; i++) printf(" %d", in[i]);
    printf("\n");
    for (i = 0; i < 2 * size; i++) in[i] = rank * 10 + i;
    MPI_Alltoall(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, in, 2, MPI_INT, MPI_COMM_WORLD);
    printf("rank %d in place:", rank);
    for (i = 0; i < 2 * size; i++) printf(" %d", in[i]);
    printf("\n");
    MPI_Finalize();
    return 0;
}
