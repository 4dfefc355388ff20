/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
/* A non-commutative operation: 2x2 integer matrix product, in rank order. */
static void matmul(void *in, void *inout, int *len, MPI_Datatype *dt) {
    int *a = in, *b = inout, i;
    (void)dt;
    for (i = 0; i < *len; i++, a += 4, b += 4) {
        int c0 = a[0] * b[0] + a[1] * b[2], c1 = a[0] * b[1] + a[1] * b[3];
        int c2 = a[2] * b[0] + a[3] * b[2], c3 = a[2] * b[1] + a[3] * b[3];
        b[0] = c0; b[1] = c1; b[2] = c2; b[3] = c3;
    }
}
static void absmax(void *in, void *inout, int *len, MPI_Datatype *dt) {
    double *a = in, *b = inout;
    int i;
    (void)dt;
    for (i = 0; i < *len; i++) {
        double x = a[i] < 0 ? -a[i] : a[i], y = b[i] < 0 ? -b[i] : b[i];
        if (x > y) b[i] = a[i];
    }
}
int main(int argc, char **argv) {
    int rank, m[8], r[8], commute;
    double d[2], dr[2];
    MPI_Op mop, aop;
    MPI_Datatype mat;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_contiguous(4, MPI_INT, &mat);
    MPI_Type_commit(&mat);
    MPI_Op_create(matmul, 0, &mop);
    MPI_Op_create(absmax, 1, &aop);
    MPI_Op_commutative(mop, &commute);
    m[0] = 1; m[1] = rank + 1; m[2] = 0; m[3] = 1;
    m[4] = rank; m[5] = 1; m[6] = 1; m[7] = 0;
    MPI_Reduce(m, r, 2, mat, mop, 2, MPI_COMM_WORLD);
    if (rank == 2) printf("reduce: [%d %d; %d %d] [%d %d; %d %d] commutative %d\n", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], commute);
    MPI_Allreduce(m, r, 2, mat, mop, MPI_COMM_WORLD);
    printf("rank %d allreduce: [%d %d; %d %d] [%d %d; %d %d]\n", rank, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    d[0] = (rank % 2 ? -1.0 : 1.0) * rank; d[1] = 0.5 - rank;
    MPI_Allreduce(d, dr, 2, MPI_DOUBLE, aop, MPI_COMM_WORLD);
    printf("rank %d absmax: %.1f %.1f\n", rank, dr[0], dr[1]);
    MPI_Scan(m, r, 2, mat, mop, MPI_COMM_WORLD);
    printf("rank %d scan: [%d %d; %d %d]\n", rank, r[0], r[1], r[2], r[3]);
    MPI_Op_free(&mop);
    MPI_Op_free(&aop);
    MPI_Type_free(&mat);
    MPI_Finalize();
    return 0;
}
