/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, root, i, ints[10];
    double d[3];
    char s[16] = "";
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (root = 0; root < size; root++) {
        for (i = 0; i < 10; i++) ints[i] = rank == root ? root * 1000 + i : -1;
        MPI_Bcast(ints, 10, MPI_INT, root, MPI_COMM_WORLD);
        printf("rank %d root %d: %d %d\n", rank, root, ints[0], ints[9]);
    }
    if (rank == 2) { d[0] = 1.5; d[1] = -2.25; d[2] = 1e10; sprintf(s, "from two"); }
    MPI_Bcast(d, 3, MPI_DOUBLE, 2, MPI_COMM_WORLD);
    MPI_Bcast(s, 16, MPI_CHAR, 2, MPI_COMM_WORLD);
    printf("rank %d: %g %g %g '%s'\n", rank, d[0], d[1], d[2], s);
    MPI_Finalize();
    return 0;
}
