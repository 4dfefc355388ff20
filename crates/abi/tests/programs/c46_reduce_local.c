/* ranks: 1 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int a[3] = {1, 5, 9}, b[3] = {4, 4, 4};
    double c[2] = {1.5, -2}, d[2] = {2, 2};
    short s1[2] = {3, 12}, s2[2] = {5, 10};
    MPI_Init(&argc, &argv);
    MPI_Reduce_local(a, b, 3, MPI_INT, MPI_MAX);
    MPI_Reduce_local(c, d, 2, MPI_DOUBLE, MPI_PROD);
    MPI_Reduce_local(s1, s2, 2, MPI_SHORT, MPI_BXOR);
    printf("max %d %d %d prod %.1f %.1f bxor %d %d\n", b[0], b[1], b[2], d[0], d[1], s2[0], s2[1]);
    MPI_Finalize();
    return 0;
}
