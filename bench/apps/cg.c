/* cg: conjugate gradients on the 5-point Laplacian of a grid split into row
 * blocks (halo exchange with MPI_Sendrecv, two dot products per iteration with
 * MPI_Allreduce); restarted every 500 iterations so any count keeps working. */
#include "apps.h"
#include <math.h>

static long rows, cols;
static int up, down;

static void halo(double *p) {
    MPI_Sendrecv(p + cols, (int)cols, MPI_DOUBLE, up, 1, p + (rows + 1) * cols, (int)cols,
                 MPI_DOUBLE, down, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(p + rows * cols, (int)cols, MPI_DOUBLE, down, 2, p, (int)cols, MPI_DOUBLE, up,
                 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

static void apply(double *p, double *q) { /* q = A p, p with halos */
    halo(p);
    for (long i = 1; i <= rows; i++)
        for (long j = 0; j < cols; j++)
            q[i * cols + j] = 4.0 * p[i * cols + j] - p[(i - 1) * cols + j] - p[(i + 1) * cols + j] -
                              p[i * cols + (j + cols - 1) % cols] - p[i * cols + (j + 1) % cols];
}

static double dot(const double *a, const double *b) {
    double local = 0.0, all = 0.0;
    for (long k = cols; k < (rows + 1) * cols; k++) local += a[k] * b[k];
    MPI_Allreduce(&local, &all, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return all;
}

int main(int argc, char **argv) {
    long mib, iters;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    apps_args(argc, argv, &mib, &iters, 64, 200);
    cols = 1024;
    rows = mib * 1024 * 1024 / 5 / 8 / cols; /* five vectors of doubles */
    if (rows < 2) rows = 2;
    up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    size_t n = (size_t)((rows + 2) * cols);
    double *x = apps_alloc(sizeof(double) * n), *b = apps_alloc(sizeof(double) * n);
    double *r = apps_alloc(sizeof(double) * n), *p = apps_alloc(sizeof(double) * n);
    double *q = apps_alloc(sizeof(double) * n);
    for (long k = cols; k < (rows + 1) * cols; k++)
        b[k] = (double)((rank * 104729 + k * 7) % 997) / 997.0;
    double rr = 0.0;
    for (long it = 0; it < iters; it++) {
        if (it % 500 == 0) { /* (re)start: r = b - A x, p = r */
            apply(x, q);
            for (long k = cols; k < (rows + 1) * cols; k++) p[k] = r[k] = b[k] - q[k];
            rr = dot(r, r);
        }
        apply(p, q);
        double alpha = rr / dot(p, q);
        for (long k = cols; k < (rows + 1) * cols; k++) {
            x[k] += alpha * p[k];
            r[k] -= alpha * q[k];
        }
        double rr_new = dot(r, r);
        double beta = rr_new / rr;
        rr = rr_new;
        for (long k = cols; k < (rows + 1) * cols; k++) p[k] = r[k] + beta * p[k];
    }
    uint64_t h = apps_combine(apps_fnv(1469598103934665603ULL, x + cols, sizeof(double) * (size_t)(rows * cols)));
    if (rank == 0) printf("cg ranks=%d rows=%ld iters=%ld residual=%.12e checksum=%016llx\n", size, rows, iters, sqrt(rr), (unsigned long long)h);
    free(x); free(b); free(r); free(p); free(q);
    MPI_Finalize();
    return 0;
}
