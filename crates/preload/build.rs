//! Compiles the exec family's wrappers (`c/exec.c`) into the library and exports them: rustc's
//! export list for a cdylib knows only Rust items, so `c/exports.map` is added as a version
//! script (copied into `$OUT_DIR`, as `crates/abi/build.rs` does, so that a reused target
//! directory never links against a path in another checkout). The archive is linked whole:
//! nothing in Rust refers to the wrappers.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=c/exec.c");
    println!("cargo:rerun-if-changed=c/exports.map");
    cc::Build::new()
        .file(dir.join("c/exec.c"))
        .warnings(true)
        .extra_warnings(true)
        .link_lib_modifier("+whole-archive")
        .compile("mpicr_preload_exec");
    let map = out.join("exports.map");
    std::fs::copy(dir.join("c/exports.map"), &map).expect("copy c/exports.map into OUT_DIR");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
