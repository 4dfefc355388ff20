/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, v, r[10], ops_i = 0;
    MPI_Op ops[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN, MPI_LAND, MPI_LOR, MPI_LXOR, MPI_BAND, MPI_BOR, MPI_BXOR};
    const char *names[] = {"sum", "prod", "max", "min", "land", "lor", "lxor", "band", "bor", "bxor"};
    float f, fr;
    unsigned long long big, bigr;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    v = rank == 2 ? 0 : rank + 5;
    for (ops_i = 0; ops_i < 10; ops_i++) {
        MPI_Allreduce(&v, &r[ops_i], 1, MPI_INT, ops[ops_i], MPI_COMM_WORLD);
        printf("rank %d %s %d\n", rank, names[ops_i], r[ops_i]);
    }
    f = 0.25f * rank;
    MPI_Allreduce(&f, &fr, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    big = 1ULL << (40 + rank);
    MPI_Allreduce(&big, &bigr, 1, MPI_UNSIGNED_LONG_LONG, MPI_BOR, MPI_COMM_WORLD);
    v = rank * rank;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d float %.2f bor %llx inplace %d\n", rank, fr, bigr, v);
    MPI_Finalize();
    return 0;
}
