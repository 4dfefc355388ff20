! ranks: 4
program split
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, sub, srank, ssize, total, res
  call mpi_init(ierr)
  call mpi_comm_rank(MPI_COMM_WORLD, rank, ierr)
  call mpi_comm_split(MPI_COMM_WORLD, rank / 2, rank, sub, ierr)
  call mpi_comm_rank(sub, srank, ierr)
  call mpi_comm_size(sub, ssize, ierr)
  call mpi_allreduce(rank, total, 1, MPI_INTEGER, MPI_SUM, sub, ierr)
  call mpi_comm_compare(sub, MPI_COMM_WORLD, res, ierr)
  write(*, '(a,i2,a,i2,a,i2,a,i3,a,l2)') 'rank', rank, ' sub', srank, ' of', ssize, &
       ' total', total, ' unequal', res == MPI_UNEQUAL
  call mpi_comm_free(sub, ierr)
  call mpi_finalize(ierr)
end program split
