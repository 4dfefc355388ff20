//! `mpicr`: run MPI jobs on one machine or several nodes, checkpoint them and look at them.

fn main() -> std::process::ExitCode {
    mpicr_cli::mpicr_main()
}
