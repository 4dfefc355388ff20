/* The body of c54_vcoll_1 … c57_vcoll_4: the gathers, scatters and all-gathers (blocking and
 * non-blocking) and Reduce_scatter with blocks in reverse rank order, gaps between them and
 * empty blocks, MPI_IN_PLACE, contiguous and strided derived types, and bad arguments under
 * MPI_ERRORS_RETURN, on as many ranks as the including program names. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#define MAXN 4
#define LEN (5 * MAXN + 3)

static int rank, size;

static void show(const char *what, const int *b, int len) {
    int i;
    printf("rank %d %s:", rank, what);
    for (i = 0; i < len; i++) printf(" %d", b[i]);
    printf("\n");
}

static void fill(int *b, int len, int v) {
    int i;
    for (i = 0; i < len; i++) b[i] = v;
}

/* Rank i's block: (i + 1) % 3 ints (so rank 2's is empty), in reverse rank order with a gap of
 * 2 before each, 3 ints apart; an empty block's displacement points into rank 0's block. A lone
 * rank's block is at 0: MPICH 4.0's (I)Allgatherv on one rank ignores the displacement. */
static void layout(int *counts, int *displs) {
    int i;
    for (i = 0; i < size; i++) {
        counts[i] = (i + 1) % 3;
        displs[i] = counts[i] ? 2 + 5 * (size - 1 - i) : 2 + 5 * (size - 1);
    }
    if (size == 1) displs[0] = 0;
}

static void mine(int *b, int n, int base) {
    int i;
    for (i = 0; i < n; i++) b[i] = base + 100 * rank + i;
}

static void blocking(void) {
    int counts[MAXN], displs[MAXN], buf[LEN], send[3], got[3], n, i, root = size - 1;
    layout(counts, displs);
    n = counts[rank];
    mine(send, 3, 1000);

    fill(buf, LEN, -1);
    MPI_Gatherv(send, n, MPI_INT, buf, counts, displs, MPI_INT, root, MPI_COMM_WORLD);
    if (rank == root) show("gatherv", buf, LEN);

    fill(buf, LEN, -1);
    if (rank == root) memcpy(buf + displs[root], send, n * sizeof(int));
    MPI_Gatherv(rank == root ? MPI_IN_PLACE : send, n, MPI_INT, buf, counts, displs, MPI_INT,
                root, MPI_COMM_WORLD);
    if (rank == root) show("gatherv in place", buf, LEN);

    for (i = 0; i < LEN; i++) buf[i] = 2000 + i;
    fill(got, 3, -1);
    MPI_Scatterv(buf, counts, displs, MPI_INT, got, n, MPI_INT, 0, MPI_COMM_WORLD);
    show("scatterv", got, 3);

    fill(got, 3, -1);
    MPI_Scatterv(buf, counts, displs, MPI_INT, rank == 0 ? MPI_IN_PLACE : got, n, MPI_INT, 0,
                 MPI_COMM_WORLD);
    if (rank != 0) show("scatterv in place", got, 3);

    fill(buf, LEN, -1);
    MPI_Allgatherv(send, n, MPI_INT, buf, counts, displs, MPI_INT, MPI_COMM_WORLD);
    show("allgatherv", buf, LEN);

    fill(buf, LEN, -1);
    memcpy(buf + displs[rank], send, n * sizeof(int));
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_INT,
                   MPI_COMM_WORLD);
    show("allgatherv in place", buf, LEN);

    /* The plain forms, and a zero count everywhere. */
    fill(buf, LEN, -1);
    MPI_Gather(send, 1, MPI_INT, buf, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) show("gather", buf, size);
    fill(buf, LEN, -1);
    buf[2 * rank] = 7 * rank;
    buf[2 * rank + 1] = 7 * rank + 1;
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, 2, MPI_INT, MPI_COMM_WORLD);
    show("allgather in place", buf, 2 * size);
    for (i = 0; i < LEN; i++) buf[i] = 3000 + i;
    fill(got, 3, -1);
    MPI_Scatter(buf, 2, MPI_INT, rank == 1 ? MPI_IN_PLACE : got, 2, MPI_INT, 1 % size,
                MPI_COMM_WORLD);
    if (rank != 1) show("scatter", got, 3);
    fill(buf, LEN, -1);
    MPI_Allgather(send, 0, MPI_INT, buf, 0, MPI_INT, MPI_COMM_WORLD);
    show("allgather of nothing", buf, 2);
}

/* Receive types other than the send type: a contiguous pair (straight into the buffer) and a
 * strided pair (packed), in reverse rank order. */
static void types(void) {
    MPI_Datatype pair, strided;
    int counts[MAXN], displs[MAXN], buf[LEN], send[2], i;
    MPI_Type_contiguous(2, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    MPI_Type_vector(2, 1, 2, MPI_INT, &strided);
    MPI_Type_commit(&strided);
    for (i = 0; i < size; i++) {
        counts[i] = 1;
        displs[i] = size - 1 - i;
    }
    mine(send, 2, 4000);
    fill(buf, LEN, -1);
    MPI_Allgatherv(send, 2, MPI_INT, buf, counts, displs, pair, MPI_COMM_WORLD);
    show("allgatherv pairs", buf, 2 * size);
    /* A strided pair spans 3 ints; displacements count extents of 3. */
    fill(buf, LEN, -1);
    MPI_Allgatherv(send, 2, MPI_INT, buf, counts, displs, strided, MPI_COMM_WORLD);
    show("allgatherv strided", buf, 3 * size);
    fill(buf, LEN, -1);
    MPI_Gatherv(send, 2, MPI_INT, buf, counts, displs, strided, 0, MPI_COMM_WORLD);
    if (rank == 0) show("gatherv strided", buf, 3 * size);
    for (i = 0; i < LEN; i++) buf[i] = 5000 + i;
    fill(send, 2, -1);
    MPI_Scatterv(buf, counts, displs, strided, send, 2, MPI_INT, 0, MPI_COMM_WORLD);
    show("scatterv strided", send, 2);
    MPI_Type_free(&pair);
    MPI_Type_free(&strided);
}

static void nonblocking(void) {
    int counts[MAXN], displs[MAXN], g[LEN], gi[LEN], ag[LEN], agi[LEN], sv[LEN], send[3];
    int got[3], goti[3], bc[4], a2a_out[LEN], a2a_in[LEN], sc[MAXN], sd[MAXN], rc[MAXN],
        rd[MAXN], n, i, k = 0, root = size / 2;
    MPI_Request r[8];
    layout(counts, displs);
    n = counts[rank];
    mine(send, 3, 7000);
    fill(g, LEN, -1);
    fill(gi, LEN, -1);
    fill(ag, LEN, -1);
    fill(agi, LEN, -1);
    fill(got, 3, -1);
    fill(goti, 3, -1);
    for (i = 0; i < LEN; i++) sv[i] = 8000 + i;
    if (rank == root) memcpy(gi + displs[root], send, n * sizeof(int));
    memcpy(agi + displs[rank], send, n * sizeof(int));
    for (i = 0; i < 4; i++) bc[i] = rank == root ? 9000 + i : -1;
    /* All-to-all with blocks in reverse order and gaps: rank r sends (r + j) % 3 ints to j. */
    for (i = 0; i < size; i++) {
        sc[i] = (rank + i) % 3;
        sd[i] = 3 * (size - 1 - i);
        rc[i] = (i + rank) % 3;
        rd[i] = 1 + 4 * (size - 1 - i);
    }
    for (i = 0; i < LEN; i++) {
        a2a_out[i] = 10000 + 100 * rank + i;
        a2a_in[i] = -1;
    }
    MPI_Igatherv(send, n, MPI_INT, g, counts, displs, MPI_INT, root, MPI_COMM_WORLD, &r[k++]);
    MPI_Igatherv(rank == root ? MPI_IN_PLACE : send, n, MPI_INT, gi, counts, displs, MPI_INT,
                 root, MPI_COMM_WORLD, &r[k++]);
    MPI_Iscatterv(sv, counts, displs, MPI_INT, got, n, MPI_INT, root, MPI_COMM_WORLD, &r[k++]);
    MPI_Iscatterv(sv, counts, displs, MPI_INT, rank == root ? MPI_IN_PLACE : goti, n, MPI_INT,
                  root, MPI_COMM_WORLD, &r[k++]);
    MPI_Iallgatherv(send, n, MPI_INT, ag, counts, displs, MPI_INT, MPI_COMM_WORLD, &r[k++]);
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, agi, counts, displs, MPI_INT,
                    MPI_COMM_WORLD, &r[k++]);
    MPI_Ibcast(bc, 4, MPI_INT, root, MPI_COMM_WORLD, &r[k++]);
    MPI_Ialltoallv(a2a_out, sc, sd, MPI_INT, a2a_in, rc, rd, MPI_INT, MPI_COMM_WORLD, &r[k++]);
    MPI_Waitall(k, r, MPI_STATUSES_IGNORE);
    if (rank == root) {
        show("igatherv", g, LEN);
        show("igatherv in place", gi, LEN);
    }
    show("iscatterv", got, 3);
    if (rank != root) show("iscatterv in place", goti, 3);
    show("iallgatherv", ag, LEN);
    show("iallgatherv in place", agi, LEN);
    show("ibcast", bc, 4);
    show("ialltoallv", a2a_in, LEN);
}

/* Non-blocking all-to-alls with MPI_IN_PLACE: the blocks sent are read from the receive
 * buffer before it is overwritten. */
static void alltoall_in_place(void) {
    int rc[MAXN], rd[MAXN], buf[LEN], sq[2 * MAXN], i;
    MPI_Request r[2];
    for (i = 0; i < size; i++) {
        rc[i] = (rank + i) % 3;
        rd[i] = 1 + 4 * (size - 1 - i);
    }
    for (i = 0; i < LEN; i++) buf[i] = 11000 + 100 * rank + i;
    for (i = 0; i < 2 * size; i++) sq[i] = 12000 + 100 * rank + i;
    MPI_Ialltoallv(MPI_IN_PLACE, NULL, NULL, MPI_DATATYPE_NULL, buf, rc, rd, MPI_INT,
                   MPI_COMM_WORLD, &r[0]);
    MPI_Ialltoall(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, sq, 2, MPI_INT, MPI_COMM_WORLD, &r[1]);
    MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
    show("ialltoallv in place", buf, 4 * size + 1);
    show("ialltoall in place", sq, 2 * size);
}

/* Affine maps x -> a x + b as pairs (a, b); inout = inout after in: associative, not
 * commutative, so the result shows the order in which ranks' contributions are combined. */
static void compose(void *in, void *inout, int *len, MPI_Datatype *dt) {
    int *p = in, *q = inout, i;
    (void)dt;
    for (i = 0; i < *len; i++) {
        int a = p[2 * i], b = p[2 * i + 1], c = q[2 * i], d = q[2 * i + 1];
        q[2 * i] = c * a;
        q[2 * i + 1] = c * b + d;
    }
}

static void reduce_scatter(void) {
    MPI_Datatype pair;
    MPI_Op op;
    int counts[MAXN], in[LEN], out[LEN], total = 0, i;
    for (i = 0; i < size; i++) {
        counts[i] = (i + 1) % 3;
        total += counts[i];
    }
    for (i = 0; i < total; i++) in[i] = i * (rank + 1);
    fill(out, LEN, -1);
    MPI_Reduce_scatter(in, out, counts, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    show("reduce_scatter", out, 3);
    MPI_Reduce_scatter(MPI_IN_PLACE, in, counts, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    show("reduce_scatter in place", in, counts[rank]);

    MPI_Type_contiguous(2, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    MPI_Op_create(compose, 0, &op);
    for (i = 0; i < total; i++) {
        in[2 * i] = 1 + (rank + i) % 3;
        in[2 * i + 1] = rank + 2 * i;
    }
    fill(out, LEN, -1);
    MPI_Reduce_scatter(in, out, counts, pair, op, MPI_COMM_WORLD);
    show("reduce_scatter in order", out, 2 * counts[rank]);
    MPI_Op_free(&op);
    MPI_Type_free(&pair);
}

/* Bad arguments return their error class and change nothing; each call fails on every rank
 * before any message moves, or runs on MPI_COMM_SELF. */
static void bad_input(void) {
    int counts[MAXN], displs[MAXN], buf[LEN], sbuf[3] = {0, 0, 0}, one = 1, zero = 0, neg = -1, e, cls;
    MPI_Request req;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    layout(counts, displs);
    counts[size - 1] = -2;
    e = MPI_Allgatherv(sbuf, counts[rank], MPI_INT, buf, counts, displs, MPI_INT,
                       MPI_COMM_WORLD);
    MPI_Error_class(e, &cls);
    printf("rank %d allgatherv negative count: %s\n", rank, cls == MPI_ERR_COUNT ? "MPI_ERR_COUNT" : "other");
    e = MPI_Iallgatherv(sbuf, counts[rank], MPI_INT, buf, counts, displs, MPI_INT,
                        MPI_COMM_WORLD, &req);
    MPI_Error_class(e, &cls);
    printf("rank %d iallgatherv negative count: %s\n", rank, cls == MPI_ERR_COUNT ? "MPI_ERR_COUNT" : "other");
    e = MPI_Gatherv(sbuf, 1, MPI_INT, buf, &neg, &zero, MPI_INT, 0, MPI_COMM_SELF);
    MPI_Error_class(e, &cls);
    printf("rank %d gatherv negative count: %s\n", rank, cls == MPI_ERR_COUNT ? "MPI_ERR_COUNT" : "other");
    e = MPI_Gatherv(sbuf, 1, MPI_INT, NULL, &one, &zero, MPI_INT, 0, MPI_COMM_SELF);
    MPI_Error_class(e, &cls);
    printf("rank %d gatherv null receive buffer: %s\n", rank, cls == MPI_ERR_BUFFER ? "MPI_ERR_BUFFER" : "other");
    e = MPI_Scatterv(NULL, &one, &zero, MPI_INT, sbuf, 1, MPI_INT, 0, MPI_COMM_SELF);
    MPI_Error_class(e, &cls);
    printf("rank %d scatterv null send buffer: %s\n", rank, cls == MPI_ERR_BUFFER ? "MPI_ERR_BUFFER" : "other");
    e = MPI_Iscatterv(buf, &neg, &zero, MPI_INT, sbuf, 1, MPI_INT, 0, MPI_COMM_SELF, &req);
    MPI_Error_class(e, &cls);
    printf("rank %d iscatterv negative count: %s\n", rank, cls == MPI_ERR_COUNT ? "MPI_ERR_COUNT" : "other");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > MAXN) MPI_Abort(MPI_COMM_WORLD, 1);
    blocking();
    types();
    nonblocking();
    alltoall_in_place();
    reduce_scatter();
    bad_input();
    MPI_Finalize();
    return 0;
}
