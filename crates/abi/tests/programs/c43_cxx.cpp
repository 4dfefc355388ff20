// ranks: 3
#include <mpi.h>
#include <cstdio>
#include <vector>
#include <numeric>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    std::vector<double> mine(4), all(4 * size);
    std::iota(mine.begin(), mine.end(), rank * 4.0);
    MPI_Allgather(mine.data(), 4, MPI_DOUBLE, all.data(), 4, MPI_DOUBLE, MPI_COMM_WORLD);
    double s = std::accumulate(all.begin(), all.end(), 0.0);
    std::printf("rank %d (C++): sum of all %.1f\n", rank, s);
    MPI_Finalize();
    return 0;
}
