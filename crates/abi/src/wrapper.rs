//! The compiler wrappers (`mpicc`, `mpicxx`, `mpif90`, `mpifort`, `mpif77`): run the real
//! compiler with the include and library flags of this libmpi. `-show` prints the command.
//!
//! Layouts, tried in order:
//! - an installed prefix: `PREFIX/bin/<wrapper>`, `PREFIX/include/mpi.h`, `PREFIX/lib/libmpi.*`;
//! - a cargo build: the wrapper next to `libmpi.so` in `target/<profile>/`, headers in this
//!   crate's `include/`.
//!
//! The compiler is `gcc`/`g++`/`gfortran`, or `$MPICR_CC`/`$MPICR_CXX`/`$MPICR_FC`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Which compiler a wrapper runs (each binary uses one variant).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    C,
    Cxx,
    Fortran,
}

struct Layout {
    include: PathBuf,
    lib: PathBuf,
    /// Where the Fortran `mpi.mod` is, when not in `include`.
    fmod: Option<PathBuf>,
}

fn layout() -> Result<Layout, String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot locate this program: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    if let Some(prefix) = dir.parent() {
        let include = prefix.join("include");
        let lib = prefix.join("lib");
        if include.join("mpi.h").is_file()
            && (lib.join("libmpi.so").is_file() || lib.join("libmpi.a").is_file())
        {
            return Ok(Layout {
                include,
                lib,
                fmod: None,
            });
        }
    }
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    if include.join("mpi.h").is_file() {
        return Ok(Layout {
            include,
            lib: dir.to_path_buf(),
            fmod: Some(PathBuf::from(env!("OUT_DIR")).join("fmod")),
        });
    }
    Err(format!(
        "cannot find mpi.h: neither {} nor {} holds it",
        dir.join("../include").display(),
        include.display()
    ))
}

fn compiler(lang: Lang) -> String {
    let (var, default) = match lang {
        Lang::C => ("MPICR_CC", "gcc"),
        Lang::Cxx => ("MPICR_CXX", "g++"),
        Lang::Fortran => ("MPICR_FC", "gfortran"),
    };
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// The full command line for `args`.
fn command(lang: Lang, args: &[String], l: &Layout) -> Vec<String> {
    let link = !args
        .iter()
        .any(|a| matches!(a.as_str(), "-c" | "-E" | "-S" | "-M" | "-MM"));
    let mut cmd = vec![compiler(lang), format!("-I{}", l.include.display())];
    if lang == Lang::Fortran {
        // mpif.h programs pass buffers of many types to one routine.
        cmd.push("-fallow-argument-mismatch".into());
        if let Some(m) = &l.fmod {
            cmd.push(format!("-I{}", m.display()));
        }
    }
    cmd.extend(args.iter().cloned());
    if link {
        cmd.push(format!("-L{}", l.lib.display()));
        cmd.push(format!("-Wl,-rpath,{}", l.lib.display()));
        cmd.push("-lmpi".into());
    }
    cmd
}

pub(crate) fn main(lang: Lang) -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let show = args.iter().any(|a| a == "-show" || a == "--show");
    args.retain(|a| a != "-show" && a != "--show");
    let l = match layout() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mpicr wrapper: {e}");
            return ExitCode::from(2);
        }
    };
    let cmd = command(lang, &args, &l);
    if show {
        println!("{}", cmd.join(" "));
        return ExitCode::SUCCESS;
    }
    if args.is_empty() {
        eprintln!("usage: {} [-show] <compiler arguments>", compiler(lang));
        return ExitCode::from(2);
    }
    match Command::new(&cmd[0]).args(&cmd[1..]).status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("mpicr wrapper: cannot run {}: {e}", cmd[0]);
            ExitCode::from(127)
        }
    }
}
