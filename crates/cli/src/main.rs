//! `mpicr`: run MPI jobs on this machine and look at them.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpicr_main()
}
