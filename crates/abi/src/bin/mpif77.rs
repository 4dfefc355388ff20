//! `mpif77`: see `wrapper.rs`.

#[path = "../wrapper.rs"]
mod wrapper;

fn main() -> std::process::ExitCode {
    wrapper::main(wrapper::Lang::Fortran)
}
