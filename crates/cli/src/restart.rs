//! `mpicr restart` / `mpi_restart`: run a job on from a committed global snapshot. Progress
//! on stderr: the parts verified k/N, then the ranks running again k/N (a bar on a terminal,
//! lines otherwise).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use coord::{JobName, JobRef, LaunchConfig, RestartFrom, RuntimeDir, Transport, error_chain};
use wire::ProcState;

use crate::args::RestartArgs;
use crate::progress::Progress;
use crate::snapshots::open_store;
use crate::{EXIT_MPICR_ERROR, say};

/// How often the restarted job's process table is looked at until every rank runs.
const RANKS_POLL: Duration = Duration::from_millis(100);

pub(crate) fn main(args: RestartArgs) -> ExitCode {
    match prepare(&args) {
        Ok(config) => {
            // Shows the ranks coming up until all run (or the job ends first).
            let (done, stop) = mpsc::channel::<()>();
            let watcher = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || show_ranks(&stop))
                .ok();
            let status = crate::run::launch(config, &args.checkpoints);
            drop(done);
            if let Some(watcher) = watcher {
                let _ = watcher.join();
            }
            status
        }
        Err(line) => {
            say(&line);
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

/// `ranks running k of N` until every rank of this process's job has registered.
fn show_ranks(stop: &Receiver<()>) {
    let Ok(dir) = RuntimeDir::open() else {
        return;
    };
    let me = JobRef::Pid(std::process::id());
    let progress = Progress::new();
    let mut shown = None;
    loop {
        if let Ok(reply) = coord::job_status(&dir, &me) {
            let total = reply.ranks.len() as u64;
            let running = reply
                .ranks
                .iter()
                .filter(|r| matches!(r.state, ProcState::Running | ProcState::Finalized))
                .count() as u64;
            if total > 0 && running == total {
                progress.finish(&format!(
                    "job {} runs again: {total} of {total} ranks restored",
                    reply.job
                ));
                return;
            }
            if shown != Some(running) {
                progress.count(&format!("job {}: ranks running", reply.job), running, total);
                shown = Some(running);
            }
        }
        if stop.recv_timeout(RANKS_POLL) != Err(RecvTimeoutError::Timeout) {
            progress.clear();
            return;
        }
    }
}

/// Finds and verifies the snapshot and builds the job that continues it. Nothing is started.
pub(crate) fn prepare(args: &RestartArgs) -> Result<LaunchConfig, String> {
    let store = open_store(args.checkpoints.snapshot_dir.as_deref())?;
    let snapshot = store.resolve(&args.snapshot).map_err(|e| error_chain(&e))?;
    let manifest = snapshot.manifest();
    let held_by: std::collections::BTreeSet<&str> = manifest
        .parts
        .iter()
        .flat_map(|p| p.nodes.iter().map(String::as_str))
        .collect();
    // The parts of a job that ran with --storage are in its nodes' stores, where only the
    // node daemons of a job on those nodes reach them.
    let mut options = args.nodes.clone();
    if options.storage.is_none() {
        options.storage = manifest.extra.get("storage").cloned();
    }
    let nodes = crate::run::nodes_config(&options)?;
    if !held_by.is_empty() && nodes.is_none() {
        return Err(format!(
            "the parts of snapshot {} are in the stores of nodes {}; restart it with --hosts or \
             --hostfile (and the --launcher that reaches them)",
            snapshot.name(),
            held_by.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut config = from_snapshot(&store, &snapshot, args.tag_output, &args.checkpoints)?;
    config.nodes = nodes;
    Ok(config)
}

/// Reads every part in `snapshot`'s directory completely and checks every checksum, showing
/// the parts verified so far. Parts kept in node stores (their entry names nodes) are checked
/// by the daemon that restarts their rank, as `store::Snapshot::verify` says.
fn verify(snapshot: &store::Snapshot) -> Result<(), String> {
    let name = snapshot.name();
    let local: Vec<u32> = snapshot
        .manifest()
        .parts
        .iter()
        .filter(|p| p.nodes.is_empty())
        .map(|p| p.rank)
        .collect();
    let progress = Progress::new();
    let what = format!("snapshot {name}: parts verified");
    for (done, &rank) in local.iter().enumerate() {
        let checked = snapshot
            .read_part(rank)
            .and_then(|part| part.verify_sections());
        if let Err(e) = checked {
            progress.clear();
            return Err(format!(
                "snapshot {name} cannot be restarted: {}; nothing was started",
                error_chain(&e)
            ));
        }
        progress.count(&what, done as u64 + 1, local.len() as u64);
    }
    progress.clear();
    Ok(())
}

/// The job that continues `snapshot`, once the snapshot verified. Nothing is started.
pub(crate) fn from_snapshot(
    store: &store::Store,
    snapshot: &store::Snapshot,
    tag_output: bool,
    checkpoints: &crate::args::CheckpointOptions,
) -> Result<LaunchConfig, String> {
    let name = snapshot.name();
    verify(snapshot)?;
    let manifest = snapshot.manifest();
    let job_name = JobName::parse(&manifest.job)
        .map_err(|e| format!("snapshot {name} has an unusable job name: {e}"))?;
    let transport = match manifest.transport.as_str() {
        "shm" => Transport::Shm,
        "tcp" => Transport::Tcp,
        other => {
            return Err(format!(
                "snapshot {name} was taken over the transport `{other}`, which this mpicr does not know"
            ));
        }
    };
    let mut command = manifest.command.iter().map(OsString::from);
    let Some(mut program) = command.next() else {
        return Err(format!("snapshot {name} records no command"));
    };
    let cwd = PathBuf::from(&manifest.cwd);
    // A relative path names a file in the job's directory, not in ours.
    let as_path = PathBuf::from(&program);
    if as_path.is_relative() && program.to_string_lossy().contains('/') {
        program = cwd.join(as_path).into_os_string();
    }
    let crs = manifest
        .extra
        .get("crs")
        .cloned()
        .unwrap_or_else(|| "self".to_owned());
    let mut args: Vec<OsString> = command.collect();
    if crs == "image" {
        verify_images(snapshot, &name)?;
        // Every rank is brought back by the restorer from its image in the snapshot.
        program = restorer()?.into_os_string();
        args = vec![
            "--rank-image".into(),
            snapshot.path().as_os_str().to_owned(),
        ];
    }
    say(&format!(
        "restarting job {job_name} from snapshot {name} ({}, epoch {})",
        crate::ranks(manifest.ranks() as usize),
        manifest.epoch
    ));
    Ok(LaunchConfig {
        size: manifest.ranks(),
        program,
        args,
        tag_output,
        transport,
        job_name: Some(job_name),
        checkpoint: crate::run::checkpoint_config(checkpoints, crs, store.root())?,
        env: Some(
            manifest
                .env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        ),
        cwd: Some(cwd),
        restart: Some(RestartFrom {
            dir: snapshot.path().to_owned(),
            epoch: manifest.epoch,
        }),
        stdout_copy: None,
        nodes: None,
        recoveries: Default::default(),
        recovering_since: None,
        preload: false,
    })
}

/// Checks every rank's image (`image` parts) without reading it whole: present with its chain,
/// of the recorded size and trailer checksum, with a valid header and trailer; anything else is
/// refused before a rank starts. Each rank's `mpicr-restore` then reads its image once, checks
/// every checksum as it goes, and refuses a damaged one before it changes anything (the rank
/// exits with status 1 and the job ends before any program code runs).
fn verify_images(snapshot: &store::Snapshot, name: &str) -> Result<(), String> {
    let refused =
        |why: String| format!("snapshot {name} cannot be restarted: {why}; nothing was started");
    for part in &snapshot.manifest().parts {
        if !part.nodes.is_empty() {
            // Kept in node stores: the daemon that restarts the rank checks the part, its image
            // and the image's chain the same way before it starts the rank, and fetches or
            // rebuilds them when its copy is missing or bad.
            continue;
        }
        if part.checkpointer != "image" {
            return Err(refused(format!(
                "rank {} was saved by the {} checkpointer in a job of the image checkpointer",
                part.rank, part.checkpointer
            )));
        }
        let reader = snapshot
            .read_part(part.rank)
            .map_err(|e| refused(error_chain(&e)))?;
        let bytes = reader
            .section(image::partref::SECTION)
            .map_err(|e| refused(error_chain(&e)))?;
        image::ImageRef::decode(&bytes)
            .and_then(|r| r.check(snapshot.path(), part.rank))
            .map_err(refused)?;
    }
    Ok(())
}

/// `mpicr-restore`, installed beside `mpicr` (or found in PATH).
fn restorer() -> Result<PathBuf, String> {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("mpicr-restore"))
        .filter(|p| p.is_file());
    if let Some(path) = beside {
        return Ok(path);
    }
    node::program::resolve(
        std::ffi::OsStr::new("mpicr-restore"),
        std::env::var_os("PATH").as_deref(),
    )
    .map_err(|e| format!("cannot restart process images: {e}"))
}
