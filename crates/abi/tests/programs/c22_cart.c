/* ranks: 4 */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, dims[2] = {2, 2}, periods[2] = {1, 0}, coords[2], cr, up, down, left, right, nd, sum;
    int gd[2], gp[2], gc[2], c2[2] = {1, 0}, r2, topo;
    MPI_Comm cart;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
    MPI_Comm_rank(cart, &cr);
    MPI_Cart_coords(cart, cr, 2, coords);
    MPI_Cart_shift(cart, 0, 1, &up, &down);
    MPI_Cart_shift(cart, 1, 1, &left, &right);
    MPI_Cartdim_get(cart, &nd);
    MPI_Cart_get(cart, 2, gd, gp, gc);
    MPI_Cart_rank(cart, c2, &r2);
    MPI_Topo_test(cart, &topo);
    printf("rank %d: coords (%d,%d) dim0 %d->%d dim1 %d->%d nd %d get %dx%d p%d%d (%d,%d) rank(1,0)=%d cart %d\n", cr,
           coords[0], coords[1], up, down, left == MPI_PROC_NULL ? -1 : left, right == MPI_PROC_NULL ? -1 : right, nd,
           gd[0], gd[1], gp[0], gp[1], gc[0], gc[1], r2, topo == MPI_CART);
    MPI_Sendrecv(&cr, 1, MPI_INT, down, 0, &sum, 1, MPI_INT, up, 0, cart, MPI_STATUS_IGNORE);
    printf("rank %d: from up %d\n", cr, sum);
    MPI_Comm_free(&cart);
    MPI_Finalize();
    return 0;
}
