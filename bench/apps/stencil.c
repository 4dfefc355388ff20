/* stencil: Jacobi iteration of the 2-D heat equation on a grid split into row
 * blocks, halos exchanged with non-blocking sends and receives every
 * iteration, the largest change reduced every 10 iterations. */
#include "apps.h"
#include <math.h>

int main(int argc, char **argv) {
    long mib, iters;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    apps_args(argc, argv, &mib, &iters, 64, 200);
    const long cols = 1024;
    long rows = mib * 1024 * 1024 / 2 / 8 / cols; /* two grids of doubles */
    if (rows < 2) rows = 2;
    double *u = apps_alloc(sizeof(double) * (size_t)((rows + 2) * cols));
    double *v = apps_alloc(sizeof(double) * (size_t)((rows + 2) * cols));
    for (long i = 1; i <= rows; i++)
        for (long j = 0; j < cols; j++)
            u[i * cols + j] = (double)((rank * 7919 + i * 31 + j * 17) % 1000) / 1000.0;
    int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    double change = 0.0;
    for (long it = 0; it < iters; it++) {
        MPI_Request rq[4];
        MPI_Irecv(u, (int)cols, MPI_DOUBLE, up, 1, MPI_COMM_WORLD, &rq[0]);
        MPI_Irecv(u + (rows + 1) * cols, (int)cols, MPI_DOUBLE, down, 2, MPI_COMM_WORLD, &rq[1]);
        MPI_Isend(u + cols, (int)cols, MPI_DOUBLE, up, 2, MPI_COMM_WORLD, &rq[2]);
        MPI_Isend(u + rows * cols, (int)cols, MPI_DOUBLE, down, 1, MPI_COMM_WORLD, &rq[3]);
        MPI_Waitall(4, rq, MPI_STATUSES_IGNORE);
        double local = 0.0;
        for (long i = 1; i <= rows; i++) {
            for (long j = 0; j < cols; j++) {
                double l = u[i * cols + (j + cols - 1) % cols], r = u[i * cols + (j + 1) % cols];
                double n = u[(i - 1) * cols + j], s = u[(i + 1) * cols + j];
                double x = 0.25 * (l + r + n + s);
                double d = fabs(x - u[i * cols + j]);
                if (d > local) local = d;
                v[i * cols + j] = x;
            }
        }
        double *t = u;
        u = v;
        v = t;
        if (it % 10 == 9 || it == iters - 1)
            MPI_Allreduce(&local, &change, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    uint64_t h = apps_combine(apps_fnv(1469598103934665603ULL, u + cols, sizeof(double) * (size_t)(rows * cols)));
    if (rank == 0) printf("stencil ranks=%d rows=%ld iters=%ld change=%.12e checksum=%016llx\n", size, rows, iters, change, (unsigned long long)h);
    free(u);
    free(v);
    MPI_Finalize();
    return 0;
}
