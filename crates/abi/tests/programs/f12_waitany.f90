! ranks: 3
program waitany
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, nprocs, i, idx, total, flag_count
  integer :: reqs(2), vals(2), status(MPI_STATUS_SIZE), tag_ub
  integer(kind=MPI_ADDRESS_KIND) :: attr
  logical :: flag
  call mpi_init(ierr)
  call mpi_comm_rank(MPI_COMM_WORLD, rank, ierr)
  call mpi_comm_size(MPI_COMM_WORLD, nprocs, ierr)
  call mpi_comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, attr, flag, ierr)
  tag_ub = int(attr)
  if (rank == 0) then
     do i = 1, 2
        call mpi_irecv(vals(i), 1, MPI_INTEGER, i, 0, MPI_COMM_WORLD, reqs(i), ierr)
     end do
     total = 0
     flag_count = 0
     do i = 1, 2
        call mpi_waitany(2, reqs, idx, status, ierr)
        if (status(MPI_SOURCE) == idx) flag_count = flag_count + 1
        total = total + vals(idx)
     end do
     write(*, '(a,i5,a,i2,a,l2)') 'total', total, ' index matches source', flag_count, &
          ' tag_ub ok', flag .and. tag_ub >= 32767
  else
     call mpi_send(rank * 21, 1, MPI_INTEGER, 0, 0, MPI_COMM_WORLD, ierr)
  end if
  call mpi_finalize(ierr)
end program waitany
