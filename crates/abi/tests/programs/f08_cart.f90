! ranks: 4
program cart
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, comm, dims(2), coords(2), src, dst, crank
  logical :: periods(2)
  call mpi_init(ierr)
  dims = 0
  call mpi_dims_create(4, 2, dims, ierr)
  periods = (/ .true., .false. /)
  call mpi_cart_create(MPI_COMM_WORLD, 2, dims, periods, .false., comm, ierr)
  call mpi_comm_rank(comm, crank, ierr)
  call mpi_cart_coords(comm, crank, 2, coords, ierr)
  call mpi_cart_shift(comm, 0, 1, src, dst, ierr)
  write(*, '(a,i2,a,2i2,a,2i2,a,2i3)') 'rank', crank, ' dims', dims, ' coords', coords, &
       ' shift', src, dst
  call mpi_cart_shift(comm, 1, 1, src, dst, ierr)
  write(*, '(a,i2,a,2i3)') 'rank', crank, ' dim1 shift', src, dst
  call mpi_comm_rank(MPI_COMM_WORLD, rank, ierr)
  call mpi_comm_free(comm, ierr)
  call mpi_finalize(ierr)
end program cart
