! The Fortran 90 `mpi` module of mpicr's libmpi: the constants, special variables and
! MPI_WTIME/MPI_WTICK of mpif.h. Routines are called without explicit interfaces, as with
! mpif.h (so a buffer may be of any type). Built into mpi.mod by build.rs (for the wrappers in
! target/<profile>/) and by scripts/install-prefix.sh (for an installed prefix).
module mpi
  implicit none
  include 'mpif.h'
end module mpi
