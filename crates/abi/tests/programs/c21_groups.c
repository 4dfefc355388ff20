/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, n, r, i, ranks_in[2] = {3, 1}, excl[1] = {0}, tr_in[4] = {0, 1, 2, 3}, tr_out[4], cmp;
    MPI_Group world, g1, g2, u, x, d;
    MPI_Comm c;
    MPI_Init(&argc, &argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    MPI_Group_incl(world, 2, ranks_in, &g1);
    MPI_Group_excl(world, 1, excl, &g2);
    MPI_Group_union(g1, g2, &u);
    MPI_Group_intersection(g1, g2, &x);
    MPI_Group_difference(g2, g1, &d);
    MPI_Group_size(u, &n);
    MPI_Group_rank(g1, &r);
    MPI_Group_translate_ranks(world, 4, tr_in, g1, tr_out);
    MPI_Group_compare(g1, x, &cmp);
    printf("rank %d: union %d, rank in g1 %d, g1->", rank, n, r == MPI_UNDEFINED ? -1 : r);
    for (i = 0; i < 4; i++) printf(" %d", tr_out[i] == MPI_UNDEFINED ? -1 : tr_out[i]);
    MPI_Group_size(d, &n);
    printf(", diff size %d, similar %d\n", n, cmp == MPI_SIMILAR || cmp == MPI_IDENT);
    MPI_Comm_create(MPI_COMM_WORLD, g1, &c);
    if (c != MPI_COMM_NULL) {
        int cr, s = 0;
        MPI_Comm_rank(c, &cr);
        MPI_Allreduce(&rank, &s, 1, MPI_INT, MPI_SUM, c);
        printf("rank %d: in new comm as %d, sum %d\n", rank, cr, s);
        MPI_Comm_free(&c);
    }
    MPI_Group_free(&g1); MPI_Group_free(&g2); MPI_Group_free(&u); MPI_Group_free(&x); MPI_Group_free(&d);
    MPI_Group_free(&world);
    MPI_Finalize();
    return 0;
}
