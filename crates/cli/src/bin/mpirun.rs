//! `mpirun`: `mpicr run` under the name MPI users type.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpirun_main("mpirun")
}
