! ckpt_ring_f STEPS [PAUSE_MS]: the Fortran version of ckpt_ring.c, a deterministic,
! message-heavy program that checkpoints itself with the self checkpointer (MPIX_CKPT_*) and
! prints one checksum line at the end. Every step: the message the left neighbour sent before
! the last safepoint is received, a 200 KB block is swapped with both neighbours (rendezvous
! sized), a note from every other rank is received with MPI_ANY_SOURCE, the running checksum
! goes to the right neighbour, then a safepoint. The state is two protected module variables.
! (Errors abort the job: MPI_ERRORS_ARE_FATAL.)
module ring_state
  implicit none
  integer, parameter :: block = 25000, hist_len = 16
  integer(8), parameter :: modulus = 2147483629_8
  integer(8), target :: st(2)            ! step, checksum: protected region 1
  integer(8), target :: hist(hist_len)   ! the last checksums: protected region 2
contains
  ! Values stay below 2**31, so nothing overflows 64 bits.
  integer(8) function mix(acc, v)
    integer(8), intent(in) :: acc, v
    mix = mod(ieor(acc * 33_8, v) + 40503_8, modulus)
  end function mix
end module ring_state

program ckpt_ring_f
  use mpi
  use ring_state
  use iso_c_binding, only: c_int
  implicit none
  interface
    integer(c_int) function usleep(us) bind(C, name='usleep')
      import :: c_int
      integer(c_int), value :: us
    end function usleep
  end interface
  integer :: ierr, rank, nranks, next, prev, peer, k, n, i, rc, steps, pause_ms
  integer :: stat(MPI_STATUS_SIZE)
  logical :: restarted
  character(len=32) :: arg
  integer(8) :: carried(2), carry(2), note, v(1), total, sum
  integer(8), allocatable :: out(:), from_prev(:), from_next(:)
  integer, allocatable :: reqs(:)
  integer(kind=MPI_ADDRESS_KIND) :: bytes

  steps = 50
  pause_ms = 0
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) steps
  end if
  if (command_argument_count() >= 2) then
    call get_command_argument(2, arg)
    read (arg, *) pause_ms
  end if
  call MPI_INIT(ierr)
  call MPI_COMM_RANK(MPI_COMM_WORLD, rank, ierr)
  call MPI_COMM_SIZE(MPI_COMM_WORLD, nranks, ierr)
  next = mod(rank + 1, nranks)
  prev = mod(rank + nranks - 1, nranks)
  allocate (out(block), from_prev(block), from_next(block), reqs(nranks))

  st(1) = 0
  st(2) = rank + 1
  hist = 0
  bytes = 16
  call MPIX_CKPT_PROTECT(1, st, bytes, ierr)
  bytes = 8 * hist_len
  call MPIX_CKPT_PROTECT(2, hist, bytes, ierr)
  call MPIX_CKPT_RESTARTED(restarted, ierr)
  if (restarted) then
    call MPIX_CKPT_RECOVER(ierr)
    write (0, '(a,i0,a,i0)') 'rank ', rank, ': restarted at step ', st(1)
  end if

  do while (st(1) < steps)
    if (st(1) > 0) then
      call MPI_RECV(carried, 2, MPI_INTEGER8, prev, 1, MPI_COMM_WORLD, stat, ierr)
      if (carried(2) /= st(1) - 1) then
        write (0, '(a,i0,a)') 'rank ', rank, ': the carried message is of another step'
        call MPI_ABORT(MPI_COMM_WORLD, 3, ierr)
      end if
      st(2) = mix(st(2), carried(1))
    end if
    do i = 1, block
      out(i) = mix(st(2), int(i, 8))
    end do
    call MPI_SENDRECV(out, block, MPI_INTEGER8, next, 2, from_prev, block, MPI_INTEGER8, &
                      prev, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    call MPI_SENDRECV(out, block, MPI_INTEGER8, prev, 3, from_next, block, MPI_INTEGER8, &
                      next, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    st(2) = mix(st(2), ieor(from_prev(block), from_next(block / 2)))

    ! Checkpoint requests wait until the end of this exchange (none can be taken here anyway).
    call MPIX_CKPT_DISABLE(ierr)
    note = ieor(st(2), int(rank, 8))
    n = 0
    do peer = 0, nranks - 1
      if (peer /= rank) then
        n = n + 1
        call MPI_ISEND(note, 1, MPI_INTEGER8, peer, 4, MPI_COMM_WORLD, reqs(n), ierr)
      end if
    end do
    sum = 0
    do k = 1, nranks - 1
      call MPI_RECV(v, 1, MPI_INTEGER8, MPI_ANY_SOURCE, 4, MPI_COMM_WORLD, stat, ierr)
      sum = mod(sum + v(1) * (stat(MPI_SOURCE) + 1), modulus)
    end do
    call MPI_WAITALL(n, reqs, MPI_STATUSES_IGNORE, ierr)
    call MPIX_CKPT_ENABLE(ierr)
    st(2) = mix(st(2), sum)
    hist(mod(st(1), int(hist_len, 8)) + 1) = st(2)

    carry(1) = st(2)
    carry(2) = st(1)
    call MPI_SEND(carry, 2, MPI_INTEGER8, next, 1, MPI_COMM_WORLD, ierr)
    st(1) = st(1) + 1
    call MPIX_CKPT_SAFEPOINT(ierr)
    if (pause_ms > 0) rc = usleep(int(pause_ms * 1000, c_int))
  end do

  call MPI_RECV(carried, 2, MPI_INTEGER8, prev, 1, MPI_COMM_WORLD, stat, ierr)
  st(2) = mix(st(2), carried(1))
  do i = 1, hist_len
    st(2) = mix(st(2), hist(i))
  end do
  call MPI_ALLREDUCE(st(2), total, 1, MPI_INTEGER8, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    write (*, '(a,z16.16,a,i0,a,i0,a)') 'result ', total, ' after ', steps, ' steps on ', &
      nranks, ' ranks'
  end if
  call MPIX_CKPT_UNPROTECT(2, ierr)
  call MPIX_CKPT_UNPROTECT(1, ierr)
  deallocate (out, from_prev, from_next, reqs)
  call MPI_FINALIZE(ierr)
end program ckpt_ring_f
