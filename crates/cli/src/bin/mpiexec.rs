//! `mpiexec`: `mpicr run` under the name the MPI standard gives the launcher.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpirun_main("mpiexec")
}
