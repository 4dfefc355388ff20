/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
/* Messages well above any eager limit, both directions at once. */
int main(int argc, char **argv) {
    int rank, i, n = 1 << 20;
    unsigned long sum = 0;
    MPI_Request r[2];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    unsigned *out = malloc(n * sizeof *out), *in = malloc(n * sizeof *in);
    for (i = 0; i < n; i++) out[i] = (unsigned)(i * 2654435761u) ^ (unsigned)rank;
    MPI_Irecv(in, n, MPI_UNSIGNED, 1 - rank, 0, MPI_COMM_WORLD, &r[0]);
    MPI_Isend(out, n, MPI_UNSIGNED, 1 - rank, 0, MPI_COMM_WORLD, &r[1]);
    MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
    for (i = 0; i < n; i++) sum += in[i] % 1000;
    printf("rank %d received checksum %lu\n", rank, sum);
    free(out);
    free(in);
    MPI_Finalize();
    return 0;
}
