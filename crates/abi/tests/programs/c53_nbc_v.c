/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, i, n, done = 0, idx[5];
    int counts[3] = {1, 2, 3}, displs[3] = {0, 1, 3}, mine[3], g[6], sv[6], part[3], ag[6];
    int sc[3], sd[3], rc[3], rd[3], a2a_in[9], a2a_out[9];
    int wc[3], wd[3], wi[3], wo[3];
    MPI_Datatype wt[3];
    MPI_Request r[5];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < 3; i++) mine[i] = rank * 10 + i;
    for (i = 0; i < 6; i++) { g[i] = -1; sv[i] = 100 + i; ag[i] = -1; }
    for (i = 0; i < 3; i++) {
        sc[i] = i + 1; rc[i] = rank + 1;
        wc[i] = 1; wd[i] = i * (int)sizeof(int); wt[i] = MPI_INT; wi[i] = rank * 7 + i;
    }
    sd[0] = 0; sd[1] = 1; sd[2] = 3;
    rd[0] = 0; rd[1] = rank + 1; rd[2] = 2 * (rank + 1);
    for (i = 0; i < 6; i++) a2a_in[i] = rank * 100 + i;
    for (i = 0; i < 9; i++) a2a_out[i] = -1;
    MPI_Igatherv(mine, rank + 1, MPI_INT, g, counts, displs, MPI_INT, 2, MPI_COMM_WORLD, &r[0]);
    MPI_Iscatterv(sv, counts, displs, MPI_INT, part, rank + 1, MPI_INT, 0, MPI_COMM_WORLD, &r[1]);
    MPI_Iallgatherv(mine, rank + 1, MPI_INT, ag, counts, displs, MPI_INT, MPI_COMM_WORLD, &r[2]);
    MPI_Ialltoallv(a2a_in, sc, sd, MPI_INT, a2a_out, rc, rd, MPI_INT, MPI_COMM_WORLD, &r[3]);
    MPI_Ialltoallw(wi, wc, wd, wt, wo, wc, wd, wt, MPI_COMM_WORLD, &r[4]);
    while (done < 5) {
        MPI_Testsome(5, r, &n, idx, MPI_STATUSES_IGNORE);
        if (n == MPI_UNDEFINED) break;
        done += n;
    }
    if (rank == 2) printf("igatherv: %d %d %d %d %d %d\n", g[0], g[1], g[2], g[3], g[4], g[5]);
    printf("rank %d iscatterv:", rank);
    for (i = 0; i <= rank; i++) printf(" %d", part[i]);
    printf("\nrank %d iallgatherv: %d %d %d %d %d %d\n", rank, ag[0], ag[1], ag[2], ag[3], ag[4], ag[5]);
    printf("rank %d ialltoallv:", rank);
    for (i = 0; i < 3 * (rank + 1); i++) printf(" %d", a2a_out[i]);
    printf("\nrank %d ialltoallw: %d %d %d\n", rank, wo[0], wo[1], wo[2]);
    MPI_Finalize();
    return 0;
}
