//! `mpicr checkpoint` / `mpi_checkpoint`: ask a running job for a global checkpoint, show its
//! progress on stderr, print the snapshot's name on stdout.

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use coord::{
    ClientError, JobRef, RuntimeDir, checkpoint_status, error_chain, job_status, request_checkpoint,
};

use crate::args::CheckpointArgs;
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
    say(&format!(
        "asking job {name} ({} ranks) for a checkpoint{}",
        status.ranks.len(),
        if terminate { ", then to end" } else { "" }
    ));
    // Dropping `done` ends the progress thread at once, even in the middle of its pause.
    let (done, stop) = mpsc::channel::<()>();
    let watcher = {
        let (dir, name) = (dir.clone(), name.clone());
        std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || show_progress(&dir, &name, &stop))
            .ok()
    };
    let answer = request_checkpoint(&dir, job, terminate);
    drop(done);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }
    match answer {
        Ok(done) => {
            say(&format!(
                "checkpoint {} committed in {} ({} messages in transit)",
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

/// One stderr line each time the published progress changes.
fn show_progress(dir: &RuntimeDir, job: &str, stop: &Receiver<()>) {
    let mut shown = None;
    loop {
        if let Some(progress) = checkpoint_status(dir, job).and_then(|s| s.running)
            && shown.as_ref() != Some(&progress)
        {
            let what = match progress.phase {
                "counting" => "sent their safepoint counts",
                _ => "saved their parts",
            };
            say(&format!(
                "checkpoint {}: {} of {} ranks {what}",
                progress.epoch, progress.reported, progress.ranks
            ));
            shown = Some(progress);
        }
        if stop.recv_timeout(PROGRESS_POLL) != Err(RecvTimeoutError::Timeout) {
            return;
        }
    }
}
