//! The C/C++/Fortran corpus: every program in `tests/programs/` is built with our wrappers,
//! run under `mpicr run -n K` (K from its `ranks: K` comment) and its output compared with
//! `<name>.out`. Lines are compared as a sorted list, since ranks print concurrently. Where
//! Debian's MPICH is installed, every program is also built and run with it and compared with
//! the same file (differential testing).
//!
//! `expect: fail` in a program means the run must fail (exit status not 0) and, under mpicr,
//! print an `mpicr: MPI_…` line on stderr; stdout is still compared.
//!
//! gcc is required (the test fails without it); without gfortran the Fortran programs are
//! skipped with a message. `MPICR_CORPUS_FILTER=substring` runs a subset; `MPICR_CORPUS_BLESS=1`
//! writes missing expected files from mpicr's output (review them!).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds the launcher if this profile has none yet (integration tests only build this crate).
fn launcher() -> PathBuf {
    let dir = profile_dir();
    let mpicr = dir.join("mpicr");
    if !mpicr.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "cli", "--bin", "mpicr"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("running cargo to build the launcher");
        assert!(st.success(), "building the mpicr launcher failed");
    }
    assert!(mpicr.is_file(), "{} is missing", mpicr.display());
    mpicr
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    C,
    Cxx,
    Fortran,
}

struct Program {
    path: PathBuf,
    name: String,
    lang: Lang,
    ranks: u32,
    expect_fail: bool,
}

fn programs() -> Vec<Program> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let filter = std::env::var("MPICR_CORPUS_FILTER").unwrap_or_default();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/programs") {
        let path = entry.expect("dir entry").path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let lang = match ext {
            "c" => Lang::C,
            "cpp" => Lang::Cxx,
            "f" | "f90" => Lang::Fortran,
            _ => continue,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        if !name.contains(&filter) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("program source");
        let ranks = text
            .lines()
            .find_map(|l| l.split("ranks:").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{}: no `ranks: K` comment", path.display()));
        assert!((1..=4).contains(&ranks), "{name}: 1 to 4 ranks");
        out.push(Program {
            expect_fail: text.contains("expect: fail"),
            path,
            name,
            lang,
            ranks,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn run_with_timeout(cmd: &mut Command) -> Result<Output, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let out = child.wait_with_output().map_err(|e| e.to_string())?;
                return Err(format!(
                    "timed out after {TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(|l| l.trim_end().to_owned()).collect();
    v.sort();
    v
}

struct Impl {
    name: &'static str,
    compilers: [String; 3],
    run: Vec<String>,
}

fn compiler(i: &Impl, lang: Lang) -> &str {
    match lang {
        Lang::C => &i.compilers[0],
        Lang::Cxx => &i.compilers[1],
        Lang::Fortran => &i.compilers[2],
    }
}

/// Builds and runs `p` with implementation `i`; returns its stdout, or why it failed.
fn build_and_run(i: &Impl, p: &Program, work: &Path) -> Result<String, String> {
    let exe = work.join(format!("{}-{}", p.name, i.name));
    let mut cc = Command::new(compiler(i, p.lang));
    cc.arg("-O1").arg(&p.path).arg("-o").arg(&exe);
    if p.lang == Lang::C {
        cc.arg("-lm");
    }
    if i.name == "mpich" && p.lang == Lang::Fortran {
        cc.arg("-fallow-argument-mismatch");
    }
    let out = cc
        .output()
        .map_err(|e| format!("cannot run the compiler: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let outdir = work.join(format!("{}-{}.out", p.name, i.name));
    let _ = std::fs::remove_dir_all(&outdir);
    std::fs::create_dir_all(&outdir).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&i.run[0]);
    cmd.args(&i.run[1..]);
    if i.name == "mpich" {
        // Hydra interleaves the bytes of concurrent lines; one file per rank avoids that.
        cmd.arg("-outfile-pattern").arg(outdir.join("rank.%r"));
    }
    cmd.arg("-n")
        .arg(p.ranks.to_string())
        .args(if i.name == "mpicr" {
            vec!["--"]
        } else {
            vec![]
        })
        .arg(&exe)
        .current_dir(work);
    let out = run_with_timeout(&mut cmd)?;
    let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if i.name == "mpich" {
        for r in 0..p.ranks {
            if let Ok(s) = std::fs::read_to_string(outdir.join(format!("rank.{r}"))) {
                stdout.push_str(&s);
            }
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if p.expect_fail {
        if out.status.success() {
            return Err(format!(
                "expected the job to fail, but it succeeded; stdout:\n{stdout}"
            ));
        }
        if i.name == "mpicr" && !stderr.lines().any(|l| l.starts_with("mpicr: MPI_")) {
            return Err(format!("no `mpicr: MPI_…` error line on stderr:\n{stderr}"));
        }
    } else if !out.status.success() {
        return Err(format!(
            "exit status {:?}; stdout:\n{stdout}\nstderr:\n{stderr}",
            out.status.code()
        ));
    }
    Ok(stdout)
}

#[test]
fn corpus() {
    assert!(
        have("gcc"),
        "gcc is required to build the C corpus (apt-get install gcc)"
    );
    let fortran = have("gfortran");
    if !fortran {
        eprintln!("SKIPPING the Fortran programs: gfortran is not installed");
    }
    let cxx = have("g++");
    let launcher = launcher();
    let lib = profile_dir().join("libmpi.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    let ours = Impl {
        name: "mpicr",
        compilers: [
            env!("CARGO_BIN_EXE_mpicc").into(),
            env!("CARGO_BIN_EXE_mpicxx").into(),
            env!("CARGO_BIN_EXE_mpif90").into(),
        ],
        run: vec![launcher.display().to_string(), "run".into()],
    };
    let mpich = (have("mpicc.mpich")
        && Command::new("mpirun.mpich")
            .arg("--version")
            .output()
            .is_ok())
    .then(|| Impl {
        name: "mpich",
        compilers: [
            "mpicc.mpich".into(),
            "mpicxx.mpich".into(),
            "mpif90.mpich".into(),
        ],
        run: vec!["mpirun.mpich".into()],
    });
    if mpich.is_none() {
        eprintln!("MPICH (mpicc.mpich, mpirun.mpich) is not installed: no differential runs");
    }
    let bless = std::env::var_os("MPICR_CORPUS_BLESS").is_some();
    let work = tempfile::tempdir().expect("temporary directory");
    let mut failures = Vec::new();
    let mut ran = 0;
    for p in programs() {
        if p.lang == Lang::Fortran && !fortran || p.lang == Lang::Cxx && !cxx {
            continue;
        }
        let expected_path = p.path.with_extension("out");
        let mut expected = std::fs::read_to_string(&expected_path).ok();
        for i in std::iter::once(&ours).chain(mpich.as_ref()) {
            let t = Instant::now();
            let result = build_and_run(i, &p, work.path());
            eprintln!(
                "{:<28} {:<6} {:>6.2}s {}",
                p.name,
                i.name,
                t.elapsed().as_secs_f64(),
                if result.is_ok() { "ran" } else { "FAILED" }
            );
            match (result, &expected) {
                (Err(e), _) => failures.push(format!("{} under {}: {e}", p.name, i.name)),
                (Ok(out), Some(exp)) => {
                    if sorted_lines(&out) != sorted_lines(exp) {
                        failures.push(format!(
                            "{} under {}: output differs from {}\n--- expected\n{exp}--- got\n{out}",
                            p.name, i.name, expected_path.display()
                        ));
                    }
                }
                (Ok(out), None) if bless && i.name == "mpicr" => {
                    std::fs::write(&expected_path, &out).expect("writing the expected output");
                    expected = Some(out);
                }
                (Ok(_), None) => failures.push(format!(
                    "{}: {} is missing (MPICR_CORPUS_BLESS=1 writes it)",
                    p.name,
                    expected_path.display()
                )),
            }
        }
        ran += 1;
    }
    assert!(
        ran > 0 || std::env::var("MPICR_CORPUS_FILTER").is_ok(),
        "no programs found"
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
