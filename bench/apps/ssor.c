/* ssor: symmetric successive over-relaxation sweeps (the LU benchmark's
 * pattern) on a grid split into row blocks. The forward sweep needs the rows
 * above already updated, so it is pipelined over column blocks: receive the
 * updated boundary segment from the rank above, sweep the block, pass the own
 * last row's segment down. The backward sweep runs the pipe upwards. The
 * residual is reduced every iteration. */
#include "apps.h"
#include <math.h>

#define BLOCK 128
#define OMEGA 1.2

int main(int argc, char **argv) {
    long mib, iters;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    apps_args(argc, argv, &mib, &iters, 64, 100);
    const long cols = 1024;
    long rows = mib * 1024 * 1024 / 2 / 8 / cols; /* solution and right-hand side */
    if (rows < 2) rows = 2;
    int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    double *u = apps_alloc(sizeof(double) * (size_t)((rows + 2) * cols));
    double *f = apps_alloc(sizeof(double) * (size_t)((rows + 2) * cols));
    for (long i = 1; i <= rows; i++)
        for (long j = 0; j < cols; j++)
            f[i * cols + j] = (double)((rank * 6007 + i * 13 + j * 29) % 101) / 1010.0;
    double res = 0.0;
    for (long it = 0; it < iters; it++) {
        /* The first rows of the rank below are the old values in the forward sweep. */
        MPI_Sendrecv(u + cols, (int)cols, MPI_DOUBLE, up, 3, u + (rows + 1) * cols, (int)cols,
                     MPI_DOUBLE, down, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (long jb = 0; jb < cols; jb += BLOCK) {
            MPI_Recv(u + jb, BLOCK, MPI_DOUBLE, up, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            for (long i = 1; i <= rows; i++)
                for (long j = jb; j < jb + BLOCK; j++) {
                    double s = u[(i - 1) * cols + j] + u[(i + 1) * cols + j] +
                               (j > 0 ? u[i * cols + j - 1] : 0.0) + (j < cols - 1 ? u[i * cols + j + 1] : 0.0);
                    u[i * cols + j] += OMEGA * (0.25 * (s + f[i * cols + j]) - u[i * cols + j]);
                }
            MPI_Send(u + rows * cols + jb, BLOCK, MPI_DOUBLE, down, 1, MPI_COMM_WORLD);
        }
        MPI_Sendrecv(u + rows * cols, (int)cols, MPI_DOUBLE, down, 4, u, (int)cols, MPI_DOUBLE,
                     up, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        double local = 0.0;
        for (long jb = cols - BLOCK; jb >= 0; jb -= BLOCK) {
            MPI_Recv(u + (rows + 1) * cols + jb, BLOCK, MPI_DOUBLE, down, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            for (long i = rows; i >= 1; i--)
                for (long j = jb + BLOCK - 1; j >= jb; j--) {
                    double s = u[(i - 1) * cols + j] + u[(i + 1) * cols + j] +
                               (j > 0 ? u[i * cols + j - 1] : 0.0) + (j < cols - 1 ? u[i * cols + j + 1] : 0.0);
                    double d = OMEGA * (0.25 * (s + f[i * cols + j]) - u[i * cols + j]);
                    u[i * cols + j] += d;
                    local += d * d;
                }
            MPI_Send(u + cols + jb, BLOCK, MPI_DOUBLE, up, 2, MPI_COMM_WORLD);
        }
        MPI_Allreduce(&local, &res, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
    uint64_t h = apps_combine(apps_fnv(1469598103934665603ULL, u + cols, sizeof(double) * (size_t)(rows * cols)));
    if (rank == 0) printf("ssor ranks=%d rows=%ld iters=%ld update=%.12e checksum=%016llx\n", size, rows, iters, sqrt(res), (unsigned long long)h);
    free(u);
    free(f);
    MPI_Finalize();
    return 0;
}
