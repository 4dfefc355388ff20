//! `mpi_restart`: `mpicr restart` under the name the Open MPI checkpoint/restart papers use.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpi_restart_main()
}
