//! `mpicr gc`: removes all but the newest snapshots of each job, and what removed snapshots
//! kept in node stores (`--storage`), reaching those nodes as the job did (`coord::node_gc`);
//! and `mpicr node-prune`, its part on a node.
//!
//! The rule when a node cannot be reached: the snapshot is removed here all the same (it cannot
//! be restarted from then on), its record stays in the job's directory
//! (`.nodes-<epoch>-<pid>/manifest`), every node whose copies remain is said with the reason,
//! and gc ends with status 1. The next `mpicr gc` tries every recorded node again and forgets a
//! record once each of its nodes has answered; removing a record by hand gives up on it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use coord::{Launcher, error_chain};
use store::{NodeRecord, Store};

use crate::args::GcArgs;
use crate::progress::Progress;
use crate::snapshots::open_store;
use crate::{EXIT_MPICR_ERROR, say};

pub(crate) fn main(args: &GcArgs) -> ExitCode {
    let launcher = match args.launcher.as_deref().map(Launcher::parse).transpose() {
        Ok(launcher) => launcher,
        Err(e) => {
            say(&e.to_string());
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let progress = Progress::new();
    let store = match open_store(args.snapshot_dir.as_deref()) {
        Ok(store) => store,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    match prune_store(&store, args, &progress) {
        Ok(removed) => {
            let mut out = std::io::stdout().lock();
            for path in removed {
                let _ = writeln!(out, "removed {}", path.display());
            }
        }
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    }
    let left = prune_nodes(&store, args.job.as_deref(), launcher.as_ref(), &progress);
    if left.is_empty() {
        return ExitCode::SUCCESS;
    }
    for line in &left {
        say(line);
    }
    say(&format!(
        "the copies above remain on their nodes; `mpicr gc` tries them again (the records are the .nodes-* directories in {})",
        store.root().display()
    ));
    ExitCode::from(EXIT_MPICR_ERROR)
}

/// Job by job, with the jobs done so far as progress; returns the removed snapshots.
fn prune_store(store: &Store, args: &GcArgs, progress: &Progress) -> Result<Vec<PathBuf>, String> {
    let jobs = match &args.job {
        Some(job) => vec![job.clone()],
        None => store.jobs().map_err(|e| error_chain(&e))?,
    };
    let total = jobs.len() as u64;
    let mut removed = Vec::new();
    for (done, job) in jobs.iter().enumerate() {
        progress.count(
            &format!("gc keeping {} per job: jobs pruned", args.keep),
            done as u64,
            total,
        );
        match store.gc_recording_node_copies(args.keep, Some(job)) {
            Ok(paths) => removed.extend(paths),
            Err(e) => {
                progress.clear();
                return Err(error_chain(&e));
            }
        }
    }
    progress.finish(&format!(
        "gc done: snapshots removed: {}, jobs looked at: {total}",
        removed.len()
    ));
    Ok(removed)
}

/// Removes the node copies of every removed snapshot on record (this gc's and those an
/// earlier gc could not finish), every node at once, with the nodes done so far as progress.
/// Returns a line for each node whose copies remain and each record that cannot be used.
fn prune_nodes(
    store: &Store,
    job: Option<&str>,
    launcher: Option<&Launcher>,
    progress: &Progress,
) -> Vec<String> {
    let (records, damaged) = match store.node_records(job) {
        Ok(found) => found,
        Err(e) => return vec![error_chain(&e)],
    };
    let mut left: Vec<String> = damaged
        .iter()
        .map(|(path, e)| {
            format!(
                "cannot read the record {}: {}",
                path.display(),
                error_chain(e)
            )
        })
        .collect();
    if records.is_empty() {
        return left;
    }
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => {
            left.push(format!("cannot tell where the mpicr program is: {e}"));
            return left;
        }
    };
    let manifests: Vec<&store::Manifest> = records.iter().map(NodeRecord::manifest).collect();
    let (prunes, unusable) = coord::plan_node_prunes(&manifests, launcher, &program);
    let mut unfinished: BTreeSet<usize> = BTreeSet::new();
    for (index, why) in unusable {
        unfinished.insert(index);
        left.push(why);
    }
    let total = prunes.len() as u64;
    let text = "gc removing the copies in node stores: nodes done";
    progress.count(text, 0, total);
    let results = coord::run_node_prunes(&prunes, |done| progress.count(text, done as u64, total));
    let mut cleaned = 0;
    for (prune, result) in prunes.iter().zip(results) {
        match result {
            Ok(()) => cleaned += 1,
            Err(why) => {
                let epochs: Vec<String> = prune.epochs.iter().map(u64::to_string).collect();
                left.push(format!(
                    "the copies of job {} (epochs {}) on node {} remain: {why}",
                    prune.job,
                    epochs.join(", "),
                    prune.node
                ));
                unfinished.extend(prune.records.iter().copied());
            }
        }
    }
    for (index, record) in records.into_iter().enumerate() {
        if unfinished.contains(&index) {
            continue;
        }
        let path = record.path().to_owned();
        if let Err(e) = record.forget() {
            left.push(format!(
                "cannot remove the record {}: {}",
                path.display(),
                error_chain(&e)
            ));
        }
    }
    progress.finish(&format!(
        "gc done on the nodes: {cleaned} of {total} cleaned"
    ));
    left
}

/// `mpicr node-prune --job J --storage DIR EPOCH…`, on a node: removes those epochs of job J
/// from this node's store.
pub(crate) fn node_prune(job: &str, storage: &std::path::Path, epochs: &[u64]) -> ExitCode {
    match node::node_store::remove_epochs(storage, job, epochs) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            say(&error_chain(&e));
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}
