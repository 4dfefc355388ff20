! ranks: 3
program alltoall
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, nprocs, i
  integer :: sendb(6), recvb(6), counts(3), displs(3), gath(9)
  call mpi_init(ierr)
  call mpi_comm_rank(MPI_COMM_WORLD, rank, ierr)
  call mpi_comm_size(MPI_COMM_WORLD, nprocs, ierr)
  do i = 1, 2 * nprocs
     sendb(i) = 100 * rank + i
  end do
  call mpi_alltoall(sendb, 2, MPI_INTEGER, recvb, 2, MPI_INTEGER, MPI_COMM_WORLD, ierr)
  write(*, '(a,i2,a,6i5)') 'rank', rank, ' alltoall', recvb
  do i = 1, nprocs
     counts(i) = i
  end do
  displs = (/ 0, 1, 3 /)
  gath = -1
  call mpi_allgatherv(sendb, rank + 1, MPI_INTEGER, gath, counts, displs, MPI_INTEGER, &
       MPI_COMM_WORLD, ierr)
  write(*, '(a,i2,a,6i5)') 'rank', rank, ' allgatherv', gath(1:6)
  call mpi_finalize(ierr)
end program alltoall
