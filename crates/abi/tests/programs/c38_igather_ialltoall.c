/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, g[8], a[4], b[4], sc[4], ag[4], part;
    MPI_Request r[4];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int mine[2] = {rank, -rank};
    for (i = 0; i < size; i++) { a[i] = rank * 10 + i; sc[i] = 100 + i; }
    MPI_Igather(mine, 2, MPI_INT, g, 2, MPI_INT, 0, MPI_COMM_WORLD, &r[0]);
    MPI_Ialltoall(a, 1, MPI_INT, b, 1, MPI_INT, MPI_COMM_WORLD, &r[1]);
    MPI_Iscatter(sc, 1, MPI_INT, &part, 1, MPI_INT, 3, MPI_COMM_WORLD, &r[2]);
    MPI_Iallgather(&rank, 1, MPI_INT, ag, 1, MPI_INT, MPI_COMM_WORLD, &r[3]);
    MPI_Waitall(4, r, MPI_STATUSES_IGNORE);
    if (rank == 0) printf("igather: %d %d %d %d %d %d %d %d\n", g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
    printf("rank %d ialltoall: %d %d %d %d iscatter %d iallgather %d %d %d %d\n", rank, b[0], b[1], b[2], b[3], part,
           ag[0], ag[1], ag[2], ag[3]);
    MPI_Finalize();
    return 0;
}
