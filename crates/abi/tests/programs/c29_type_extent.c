/* ranks: 1 */
#include <mpi.h>
#include <stdio.h>
static void show(const char *name, MPI_Datatype t) {
    int size;
    MPI_Aint lb, ext, tlb, text;
    MPI_Type_size(t, &size);
    MPI_Type_get_extent(t, &lb, &ext);
    MPI_Type_get_true_extent(t, &tlb, &text);
    printf("%-10s size %3d lb %3ld extent %3ld true lb %3ld true extent %3ld\n", name, size, (long)lb, (long)ext,
           (long)tlb, (long)text);
}
int main(int argc, char **argv) {
    MPI_Datatype v, hv, r, idx, s;
    int lens[2] = {1, 2}, displs[2] = {4, 0};
    MPI_Aint sd[2] = {0, 8};
    MPI_Datatype st[2] = {MPI_INT, MPI_DOUBLE};
    MPI_Init(&argc, &argv);
    show("int", MPI_INT);
    show("double", MPI_DOUBLE);
    show("char", MPI_CHAR);
    show("short", MPI_SHORT);
    show("long long", MPI_LONG_LONG);
    MPI_Type_vector(3, 2, 4, MPI_INT, &v);
    show("vector", v);
    MPI_Type_create_hvector(2, 1, 24, v, &hv);
    show("hvector", hv);
    MPI_Type_create_resized(v, -8, 64, &r);
    show("resized", r);
    MPI_Type_indexed(2, lens, displs, MPI_DOUBLE, &idx);
    show("indexed", idx);
    MPI_Type_create_struct(2, lens, sd, st, &s);
    show("struct", s);
    MPI_Type_free(&v); MPI_Type_free(&hv); MPI_Type_free(&r); MPI_Type_free(&idx); MPI_Type_free(&s);
    MPI_Finalize();
    return 0;
}
