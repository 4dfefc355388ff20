! ranks: 2
program use_mpi
  use mpi
  implicit none
  integer :: ierr, rank, nprocs, other, status(MPI_STATUS_SIZE)
  double precision :: t, x(3), y(3)
  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  t = MPI_Wtime()
  other = 1 - rank
  x = (/ 1.0d0, 2.0d0, 3.0d0 /) * (rank + 1)
  call MPI_Sendrecv(x, 3, MPI_DOUBLE_PRECISION, other, 0, y, 3, MPI_DOUBLE_PRECISION, other, 0, &
       MPI_COMM_WORLD, status, ierr)
  write(*, '(a,i2,a,3f6.1,a,i2,a,l2)') 'rank', rank, ' got', y, ' from', status(MPI_SOURCE), &
       ' time ok', MPI_Wtime() >= t
  call MPI_Finalize(ierr)
end program use_mpi
