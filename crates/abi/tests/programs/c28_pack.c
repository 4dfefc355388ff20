/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, pos = 0, n = 3, ints[3] = {7, 8, 9}, size, sz2;
    double d = 2.75;
    char buf[128];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Pack_size(3, MPI_INT, MPI_COMM_WORLD, &size);
    MPI_Pack_size(1, MPI_DOUBLE, MPI_COMM_WORLD, &sz2);
    if (rank == 0) {
        MPI_Pack(&n, 1, MPI_INT, buf, 128, &pos, MPI_COMM_WORLD);
        MPI_Pack(ints, 3, MPI_INT, buf, 128, &pos, MPI_COMM_WORLD);
        MPI_Pack(&d, 1, MPI_DOUBLE, buf, 128, &pos, MPI_COMM_WORLD);
        MPI_Send(buf, pos, MPI_PACKED, 1, 0, MPI_COMM_WORLD);
    } else {
        int m, got[3];
        double e;
        MPI_Recv(buf, 128, MPI_PACKED, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Unpack(buf, 128, &pos, &m, 1, MPI_INT, MPI_COMM_WORLD);
        MPI_Unpack(buf, 128, &pos, got, m, MPI_INT, MPI_COMM_WORLD);
        MPI_Unpack(buf, 128, &pos, &e, 1, MPI_DOUBLE, MPI_COMM_WORLD);
        printf("unpacked %d: %d %d %d %.2f, pack sizes >= %d %d\n", m, got[0], got[1], got[2], e, size >= 12, sz2 >= 8);
    }
    MPI_Finalize();
    return 0;
}
