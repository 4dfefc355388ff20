/* bucket: the integer sort of the NAS IS benchmark's pattern. Every iteration
 * each rank draws its keys (a linear congruential generator seeded by rank and
 * iteration), counts them per destination bucket (one key range per rank),
 * exchanges the counts (MPI_Alltoall) and the keys (MPI_Alltoallv), sorts what
 * it received by counting, checks the order locally and against its
 * neighbour, and folds the sorted keys into a checksum. */
#include "apps.h"

#define KEY_BITS 20
#define MAX_KEY (1L << KEY_BITS)

int main(int argc, char **argv) {
    long mib, iters;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    apps_args(argc, argv, &mib, &iters, 64, 50);
    long nkeys = mib * 1024 * 1024 / 4 / 4; /* keys, sent, received (up to 2x), sorted */
    int *keys = apps_alloc(sizeof(int) * (size_t)nkeys), *sent = apps_alloc(sizeof(int) * (size_t)nkeys);
    long cap = 2 * nkeys;
    int *recvd = apps_alloc(sizeof(int) * (size_t)cap);
    long range = (MAX_KEY + size - 1) / size;
    int *hist = apps_alloc(sizeof(int) * (size_t)range);
    int *scount = apps_alloc(sizeof(int) * (size_t)size), *rcount = apps_alloc(sizeof(int) * (size_t)size);
    int *sdisp = apps_alloc(sizeof(int) * (size_t)size), *rdisp = apps_alloc(sizeof(int) * (size_t)size);
    uint64_t h = 1469598103934665603ULL;
    uint64_t state = 0;
    for (long it = 0; it < iters; it++) {
        state = 6364136223846793005ULL * (uint64_t)(rank + 1) + 1442695040888963407ULL * (uint64_t)(it + 1);
        memset(scount, 0, sizeof(int) * (size_t)size);
        for (long k = 0; k < nkeys; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            /* The sum of two draws: keys crowd the middle ranks, as in IS. */
            long key = (long)(((state >> 33) & (MAX_KEY / 2 - 1)) + ((state >> 13) & (MAX_KEY / 2 - 1)));
            keys[k] = (int)key;
            scount[key / range]++;
        }
        MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, MPI_COMM_WORLD);
        long total = 0;
        for (int r = 0; r < size; r++) {
            sdisp[r] = r == 0 ? 0 : sdisp[r - 1] + scount[r - 1];
            rdisp[r] = (int)total;
            total += rcount[r];
        }
        if (total > cap) {
            fprintf(stderr, "bucket: rank %d would receive %ld keys, more than its %ld\n", rank, total, cap);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int r = 0; r < size; r++) rcount[r] = 0; /* reuse as fill pointers */
        for (long k = 0; k < nkeys; k++) {
            int d = (int)(keys[k] / range);
            sent[sdisp[d] + rcount[d]++] = keys[k];
        }
        MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, MPI_COMM_WORLD);
        MPI_Alltoallv(sent, scount, sdisp, MPI_INT, recvd, rcount, rdisp, MPI_INT, MPI_COMM_WORLD);
        memset(hist, 0, sizeof(int) * (size_t)range);
        long lo = range * rank;
        for (long k = 0; k < total; k++) {
            long v = recvd[k] - lo;
            if (v < 0 || v >= range) {
                fprintf(stderr, "bucket: rank %d received key %d outside its range\n", rank, recvd[k]);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            hist[v]++;
        }
        long at = 0;
        for (long v = 0; v < range; v++)
            for (int c = 0; c < hist[v]; c++) recvd[at++] = (int)(lo + v);
        int edge[2] = {total ? recvd[0] : (int)lo, total ? recvd[total - 1] : (int)lo}, below = -1;
        MPI_Sendrecv(&edge[1], 1, MPI_INT, rank < size - 1 ? rank + 1 : MPI_PROC_NULL, 5, &below, 1, MPI_INT,
                     rank > 0 ? rank - 1 : MPI_PROC_NULL, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rank > 0 && below > edge[0]) {
            fprintf(stderr, "bucket: keys out of order between ranks %d and %d\n", rank - 1, rank);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        h = apps_fnv(h, recvd, sizeof(int) * (size_t)total);
    }
    h = apps_combine(h);
    if (rank == 0) printf("bucket ranks=%d keys=%ld iters=%ld checksum=%016llx\n", size, nkeys, iters, (unsigned long long)h);
    free(keys); free(sent); free(recvd); free(hist); free(scount); free(rcount); free(sdisp); free(rdisp);
    MPI_Finalize();
    return 0;
}
