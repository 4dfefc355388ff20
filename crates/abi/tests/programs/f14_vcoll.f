! ranks: 3
! Gatherv, Scatterv, Allgatherv and Iallgatherv from Fortran: blocks in
! reverse rank order with gaps, rank 2's block empty, MPI_IN_PLACE.
      PROGRAM VCOLL
      INCLUDE 'mpif.h'
      INTEGER IERR, RANK, NP, I, N, ROOT, REQ
      INTEGER CNT(3), DSP(3), MINE(2), BUF(16), GOT(2)
      CALL MPI_INIT(IERR)
      CALL MPI_COMM_RANK(MPI_COMM_WORLD, RANK, IERR)
      CALL MPI_COMM_SIZE(MPI_COMM_WORLD, NP, IERR)
      DO I = 1, NP
         CNT(I) = MOD(I, 3)
         DSP(I) = 2 + 5 * (NP - I)
      END DO
      DSP(3) = 0
      N = CNT(RANK + 1)
      MINE(1) = 100 * RANK + 1
      MINE(2) = 100 * RANK + 2
      ROOT = 1
      DO I = 1, 16
         BUF(I) = -1
      END DO
      CALL MPI_GATHERV(MINE, N, MPI_INTEGER, BUF, CNT, DSP,
     &     MPI_INTEGER, ROOT, MPI_COMM_WORLD, IERR)
      IF (RANK .EQ. ROOT) WRITE(*,'(A,16I5)') 'GATHERV', BUF
      DO I = 1, 16
         BUF(I) = -2
      END DO
      IF (RANK .EQ. ROOT) THEN
         DO I = 1, N
            BUF(DSP(RANK + 1) + I) = MINE(I)
         END DO
         CALL MPI_GATHERV(MPI_IN_PLACE, N, MPI_INTEGER, BUF, CNT,
     &        DSP, MPI_INTEGER, ROOT, MPI_COMM_WORLD, IERR)
         WRITE(*,'(A,16I5)') 'GATHERV IN PLACE', BUF
      ELSE
         CALL MPI_GATHERV(MINE, N, MPI_INTEGER, BUF, CNT, DSP,
     &        MPI_INTEGER, ROOT, MPI_COMM_WORLD, IERR)
      END IF
      DO I = 1, 16
         BUF(I) = 1000 + I
      END DO
      GOT(1) = -1
      GOT(2) = -1
      CALL MPI_SCATTERV(BUF, CNT, DSP, MPI_INTEGER, GOT, N,
     &     MPI_INTEGER, 0, MPI_COMM_WORLD, IERR)
      WRITE(*,'(A,I2,A,2I6)') 'RANK', RANK, ' SCATTERV', GOT
      DO I = 1, 16
         BUF(I) = -1
      END DO
      DO I = 1, N
         BUF(DSP(RANK + 1) + I) = MINE(I)
      END DO
      CALL MPI_ALLGATHERV(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, BUF,
     &     CNT, DSP, MPI_INTEGER, MPI_COMM_WORLD, IERR)
      WRITE(*,'(A,I2,A,16I5)') 'RANK', RANK, ' ALLGATHERV', BUF
      DO I = 1, 16
         BUF(I) = -1
      END DO
      CALL MPI_IALLGATHERV(MINE, N, MPI_INTEGER, BUF, CNT, DSP,
     &     MPI_INTEGER, MPI_COMM_WORLD, REQ, IERR)
      CALL MPI_WAIT(REQ, MPI_STATUS_IGNORE, IERR)
      WRITE(*,'(A,I2,A,16I5)') 'RANK', RANK, ' IALLGATHERV', BUF
      CALL MPI_FINALIZE(IERR)
      END
