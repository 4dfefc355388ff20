//! `mpicr demo`: the built-in heat-diffusion job.

use std::io::Write;
use std::process::ExitCode;

use coord::{CheckpointConfig, DEFAULT_CHECKPOINT_TIMEOUT, LaunchConfig, Transport};

use crate::{EXIT_MPICR_ERROR, say};

/// The demo program, built from this workspace next to the `mpicr` binary.
const DEMO_PROGRAM: &str = "mpicr-heat";
const DEMO_RANKS: u32 = 4;

pub(crate) fn main() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            say(&format!("cannot find the mpicr binary's own path: {e}"));
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let program = exe.with_file_name(DEMO_PROGRAM);
    if !program.is_file() {
        say(&format!(
            "the demo program {} is missing; `cargo build --release` builds it next to mpicr",
            program.display()
        ));
        return ExitCode::from(EXIT_MPICR_ERROR);
    }
    let _ = writeln!(
        std::io::stdout().lock(),
        "mpicr demo: 2-D heat diffusion (Jacobi iteration) on {DEMO_RANKS} ranks.\n\
         The grid is split among the ranks; every iteration each rank exchanges its boundary\n\
         rows with its neighbours through mpicr, and at the end the program checks its result.\n\
         Running: mpicr run -n {DEMO_RANKS} -- {}\n",
        program.display()
    );
    let snapshot_dir = match crate::snapshots::snapshot_dir(None) {
        Ok(dir) => dir,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    crate::run::launch(LaunchConfig {
        size: DEMO_RANKS,
        program: program.into_os_string(),
        args: Vec::new(),
        tag_output: false,
        transport: Transport::Shm,
        job_name: None,
        checkpoint: CheckpointConfig {
            snapshot_dir,
            crs: "self".into(),
            every: None,
            keep: None,
            timeout: DEFAULT_CHECKPOINT_TIMEOUT,
        },
        env: None,
        cwd: None,
        restart: None,
    })
}
