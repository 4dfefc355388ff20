! ranks: 2
      PROGRAM TYPES
      INCLUDE 'mpif.h'
      INTEGER IERR, RANK, I, J, ROWTYPE, ISIZE
      INTEGER(KIND=MPI_ADDRESS_KIND) LB, EXTENT
      DOUBLE PRECISION A(4, 3), ROW(3)
      CALL MPI_INIT(IERR)
      CALL MPI_COMM_RANK(MPI_COMM_WORLD, RANK, IERR)
!     A row of a column-major 4x3 matrix: 3 elements, stride 4.
      CALL MPI_TYPE_VECTOR(3, 1, 4, MPI_DOUBLE_PRECISION, ROWTYPE,
     &     IERR)
      CALL MPI_TYPE_COMMIT(ROWTYPE, IERR)
      CALL MPI_TYPE_SIZE(ROWTYPE, ISIZE, IERR)
      CALL MPI_TYPE_GET_EXTENT(ROWTYPE, LB, EXTENT, IERR)
      IF (RANK .EQ. 0) THEN
         DO J = 1, 3
            DO I = 1, 4
               A(I, J) = I * 10 + J
            END DO
         END DO
         CALL MPI_SEND(A(2, 1), 1, ROWTYPE, 1, 0, MPI_COMM_WORLD,
     &        IERR)
      ELSE
         CALL MPI_RECV(ROW, 3, MPI_DOUBLE_PRECISION, 0, 0,
     &        MPI_COMM_WORLD, MPI_STATUS_IGNORE, IERR)
         WRITE(*,'(A,3F6.1,A,I4,A,I4)') 'ROW', ROW, ' SIZE', ISIZE,
     &      ' EXTENT', EXTENT
      END IF
      CALL MPI_TYPE_FREE(ROWTYPE, IERR)
      CALL MPI_FINALIZE(IERR)
      END
