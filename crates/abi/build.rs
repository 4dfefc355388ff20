//! 1. Exports the `MPI_*` weak aliases from libmpi.so: they are defined in assembly, which
//!    rustc's export list for a cdylib does not know about (see `mpi-aliases.map`). The map is
//!    copied into `$OUT_DIR` and linked from there: cargo replays a cached build script's output
//!    without rerunning it, so a path into the source tree breaks the link once a target
//!    directory is reused by a checkout at another path and the first one is gone.
//! 2. Compiles the Fortran `mpi` module (include/mpi.f90) into `$OUT_DIR/fmod/mpi.mod` when
//!    gfortran is installed; `mpif90` adds that directory to the include path.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=mpi-aliases.map");
    println!("cargo:rerun-if-changed=include/mpi.f90");
    println!("cargo:rerun-if-changed=include/mpif.h");
    let map = out.join("mpi-aliases.map");
    std::fs::copy(dir.join("mpi-aliases.map"), &map).expect("copy mpi-aliases.map into OUT_DIR");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    let fmod = out.join("fmod");
    let _ = std::fs::create_dir_all(&fmod);
    let status = Command::new("gfortran")
        .arg("-c")
        .arg(format!("-I{}", dir.join("include").display()))
        .arg("-J")
        .arg(&fmod)
        .arg(dir.join("include/mpi.f90"))
        .arg("-o")
        .arg(fmod.join("mpi.o"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=compiling the Fortran mpi module failed ({s})"),
        Err(_) => {} // no gfortran: Fortran programs cannot be built anyway
    }
}
