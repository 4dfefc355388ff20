/* ranks: 3 */
#include <mpi.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <complex.h>
int main(int argc, char **argv) {
    int rank;
    int64_t a, as;
    uint8_t b, bs;
    int16_t c, cm;
    bool t, tall, tany;
    double complex z, zs;
    unsigned u, um;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    a = (int64_t)1 << (33 + rank); b = (uint8_t)(100 + rank * 60); c = (int16_t)(-300 * rank);
    t = rank != 1; z = (rank + 1) + rank * I; u = 4000000000u - rank;
    MPI_Allreduce(&a, &as, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&b, &bs, 1, MPI_UINT8_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&c, &cm, 1, MPI_INT16_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&t, &tall, 1, MPI_C_BOOL, MPI_LAND, MPI_COMM_WORLD);
    MPI_Allreduce(&t, &tany, 1, MPI_C_BOOL, MPI_LOR, MPI_COMM_WORLD);
    MPI_Allreduce(&z, &zs, 1, MPI_C_DOUBLE_COMPLEX, MPI_PROD, MPI_COMM_WORLD);
    MPI_Allreduce(&u, &um, 1, MPI_UNSIGNED, MPI_MAX, MPI_COMM_WORLD);
    printf("rank %d: %lld %u %d %d %d (%.1f%+.1fi) %u\n", rank, (long long)as, bs, cm, tall, tany, creal(zs), cimag(zs), um);
    MPI_Finalize();
    return 0;
}
