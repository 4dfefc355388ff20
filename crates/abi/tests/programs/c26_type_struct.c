/* ranks: 2 */
#include <mpi.h>
#include <stdio.h>
#include <stddef.h>
struct particle { char tag; double pos[3]; int id; };
int main(int argc, char **argv) {
    int rank, i, lens[3] = {1, 3, 1};
    MPI_Aint displs[3] = {offsetof(struct particle, tag), offsetof(struct particle, pos), offsetof(struct particle, id)};
    MPI_Aint lb, extent;
    MPI_Datatype types[3] = {MPI_CHAR, MPI_DOUBLE, MPI_INT}, ptype, rtype;
    struct particle p[3];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Type_create_struct(3, lens, displs, types, &ptype);
    MPI_Type_create_resized(ptype, 0, sizeof(struct particle), &rtype);
    MPI_Type_commit(&rtype);
    MPI_Type_get_extent(rtype, &lb, &extent);
    if (rank == 0) {
        for (i = 0; i < 3; i++) { p[i].tag = 'a' + i; p[i].pos[0] = i; p[i].pos[1] = i * 0.5; p[i].pos[2] = -i; p[i].id = 100 + i; }
        MPI_Send(p, 3, rtype, 1, 0, MPI_COMM_WORLD);
    } else {
        MPI_Recv(p, 3, rtype, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (i = 0; i < 3; i++) printf("%c %.1f %.1f %.1f %d\n", p[i].tag, p[i].pos[0], p[i].pos[1], p[i].pos[2], p[i].id);
        printf("extent matches struct: %d\n", extent == (MPI_Aint)sizeof(struct particle));
    }
    MPI_Type_free(&ptype);
    MPI_Type_free(&rtype);
    MPI_Finalize();
    return 0;
}
