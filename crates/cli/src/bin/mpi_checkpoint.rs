//! `mpi_checkpoint`: `mpicr checkpoint` under the name the Open MPI checkpoint/restart papers use.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpi_checkpoint_main()
}
