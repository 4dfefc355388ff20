//! `mpicr checkpoint` / `mpi_checkpoint`: ask a running job for a global checkpoint, show its
//! progress on stderr (requested, ranks at their safepoint k/N, ranks saved k/N, committed:
//! a bar on a terminal, lines otherwise), print the snapshot's name on stdout.

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use coord::{
    ClientError, JobRef, RuntimeDir, checkpoint_status, error_chain, job_status, request_checkpoint,
};

use crate::args::CheckpointArgs;
use crate::progress::Progress;
use crate::{EXIT_MPICR_ERROR, say};

/// How often the progress of the checkpoint is looked at.
const PROGRESS_POLL: Duration = Duration::from_millis(200);

pub(crate) fn main(args: &CheckpointArgs) -> ExitCode {
    match checkpoint(&args.job, args.terminate) {
        Ok(name) => {
            // The name is the last line of stdout: scripts take it from there.
            let _ = writeln!(std::io::stdout().lock(), "{name}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            say(&line);
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

pub(crate) fn checkpoint(job: &JobRef, terminate: bool) -> Result<String, String> {
    let dir = RuntimeDir::open().map_err(|e| error_chain(&e))?;
    let status = job_status(&dir, job).map_err(|e| error_chain(&e))?;
    let name = status.job.clone();
    let progress = Progress::new();
    progress.phase(&format!(
        "checkpoint of job {name} ({}) requested{}",
        crate::ranks(status.ranks.len()),
        if terminate { ", then the job ends" } else { "" }
    ));
    // Dropping `done` ends the progress thread at once, even in the middle of its pause.
    let (done, stop) = mpsc::channel::<()>();
    let watcher = {
        let (dir, name, progress) = (dir.clone(), name.clone(), progress.clone());
        std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || show_progress(&dir, &name, &stop, &progress))
            .ok()
    };
    let answer = request_checkpoint(&dir, job, terminate);
    drop(done);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }
    if answer.is_err() {
        progress.clear();
    }
    match answer {
        Ok(done) => {
            // The duration the coordinator recorded in the manifest.
            let took = store::Snapshot::open(std::path::Path::new(&done.path))
                .ok()
                .and_then(|s| s.info(true).duration_ms)
                .map_or_else(String::new, |ms| format!(" after {ms} ms"));
            progress.finish(&format!(
                "checkpoint {} committed{took} in {} ({} messages in transit)",
                done.name, done.path, done.in_transit
            ));
            Ok(done.name)
        }
        Err(ClientError::Refused(sentence)) => Err(sentence),
        Err(e @ ClientError::Receive(_)) => Err(format!(
            "job {name} ended before the checkpoint was committed ({})",
            error_chain(&e)
        )),
        Err(e) => Err(error_chain(&e)),
    }
}

/// The bar, or one stderr line, each time the published progress changes.
fn show_progress(dir: &RuntimeDir, job: &str, stop: &Receiver<()>, bar: &Progress) {
    let mut shown = None;
    loop {
        if let Some(progress) = checkpoint_status(dir, job).and_then(|s| s.running)
            && shown.as_ref() != Some(&progress)
        {
            let what = match progress.phase {
                "counting" => "ranks at their safepoint",
                _ => "ranks saved",
            };
            bar.count(
                &format!("checkpoint {}: {what}", progress.epoch),
                progress.reported.into(),
                progress.ranks.into(),
            );
            shown = Some(progress);
        }
        if stop.recv_timeout(PROGRESS_POLL) != Err(RecvTimeoutError::Timeout) {
            return;
        }
    }
}
