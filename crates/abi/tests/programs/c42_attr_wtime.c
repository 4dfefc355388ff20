/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    int rank, flag, *tag_ub, len, vlen;
    double t0, t1, tick;
    char name[MPI_MAX_PROCESSOR_NAME], version[MPI_MAX_LIBRARY_VERSION_STRING];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
    t0 = MPI_Wtime();
    MPI_Barrier(MPI_COMM_WORLD);
    t1 = MPI_Wtime();
    tick = MPI_Wtick();
    MPI_Get_processor_name(name, &len);
    MPI_Get_library_version(version, &vlen);
    printf("rank %d: tag_ub found %d >= 32767 %d, time monotonic %d, tick positive %d, name ok %d, version ok %d\n",
           rank, flag, *tag_ub >= 32767, t1 >= t0, tick > 0 && tick < 1, len > 0 && (int)strlen(name) == len,
           vlen > 0);
    MPI_Finalize();
    return 0;
}
