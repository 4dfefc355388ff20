//! The checkpoint signal's handler: answers the coordinator, captures the process image, and
//! in a restored process joins the new job.
//!
//! The protocol is the image checkpointer's for a rank without links (`engine::ckpt`):
//! CHECKPOINT is answered with a count at once, CHECKPOINT_AT names the staging directory and
//! the image is captured right there, inside the handler, and written by a forked writer that
//! the handler waits for; then the part goes out (PART_DONE). Waiting inside the handler keeps
//! the program's own handlers (SIGCHLD among them) from running before the writer is reaped;
//! the cost is that the program stalls for the whole write.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use image::{CaptureOptions, Chain, ChildOutcome, Codec};
use wire::{CheckpointFailed, Exit, Message, PartDone, SafepointCount};

use engine::ControlLink;

use crate::job::Launch;
use crate::sys;

/// The preloaded rank.
pub(crate) struct Rank {
    /// The process that joined: a child the program forks inherits the handler but is no rank.
    pub(crate) pid: u32,
    pub(crate) rank: u32,
    job: String,
    pub(crate) control: ControlLink,
    /// The checkpoint whose count went out, waiting for its CHECKPOINT_AT.
    pub(crate) pending: Option<u64>,
    codec: Result<Codec, String>,
    chain: Chain,
    /// The connection is gone (the job ends); nothing more is read or sent.
    pub(crate) closed: bool,
    /// This library's `LD_PRELOAD` entry, put back for a program the rank executes.
    pub(crate) library: Option<String>,
    /// The connection is being handed over to the program an `exec` starts: the handler
    /// leaves it alone until the exec fails.
    pub(crate) handover: Option<crate::exec::Handover>,
}

/// The one rank of this process. Touched only by the handler (which blocks every signal) and
/// by `start`/`leave` and the exec hooks (`exec`), which block the checkpoint signal while they
/// touch it; the program is single-threaded.
struct Slot(UnsafeCell<Option<Rank>>);

// SAFETY: see `Slot`: no two accesses can overlap.
unsafe impl Sync for Slot {}

static RANK: Slot = Slot(UnsafeCell::new(None));

pub(crate) fn rank() -> Option<&'static mut Rank> {
    // SAFETY: see `Slot`; every caller is one of the non-overlapping accessors.
    unsafe { (*RANK.0.get()).as_mut() }
}

/// One line on stderr, as the MPI layer's messages look.
pub(crate) fn say(line: &str) {
    let text = format!("mpicr: preloaded runtime: {line}\n");
    let _ = rustix::io::write(rustix::stdio::stderr(), text.as_bytes());
}

/// Joins the job, or takes over the connection `inherited` names (the value of
/// [`image::CONTROL_FD_VAR`]), and arms the checkpoint signal (the library's constructor);
/// `library` is this library's `LD_PRELOAD` entry.
pub(crate) fn start(library: Option<String>, inherited: Option<String>) {
    let sig = image::attention::signal();
    sys::set_blocked(sig, true);
    let joined = Launch::read(&|name| sys::env_var(name).filter(|v| !v.is_empty()))
        .and_then(|launch| Ok((launch.connection(inherited.as_deref())?, launch)));
    let (stream, launch) = match joined {
        Ok(j) => j,
        Err(e) => {
            say(&format!("this rank cannot join its job: {}", chain(&e)));
            sys::exit_now(1);
        }
    };
    let (codec, full_every) = crs::image_settings();
    let fd = stream.as_raw_fd();
    // SAFETY: see `Slot`; the signal is blocked and the handler not yet installed.
    unsafe {
        *RANK.0.get() = Some(Rank {
            pid: std::process::id(),
            rank: launch.rank,
            job: launch.job,
            control: ControlLink::new(stream),
            pending: None,
            codec,
            chain: Chain::new(full_every),
            closed: false,
            library,
            handover: None,
        });
    }
    if let Err(e) =
        sys::install(sig, on_signal).and_then(|()| image::attention::async_signal(fd, sig, true))
    {
        say(&format!("cannot arm the checkpoint signal {sig}: {e}"));
        sys::exit_now(1);
    }
    sys::at_exit(leave);
    // What arrived before the signal was armed (on a connection handed over across exec)
    // raised no signal.
    serve_caught();
    sys::set_blocked(sig, false);
}

/// Sends `message`; a failure is reported on stderr (the coordinator is gone or the job is
/// ending, and the program computes on either way).
fn send(control: &mut ControlLink, message: &Message) {
    if let Err(e) = control.send(message) {
        say(&format!("telling the coordinator failed: {}", chain(&e)));
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s.push_str(": ");
        s.push_str(&x.to_string());
        source = x.source();
    }
    s
}

extern "C" fn on_signal(_sig: c_int, _info: *mut libc::siginfo_t, _context: *mut c_void) {
    let errno = sys::errno();
    serve_caught();
    sys::set_errno(errno);
}

/// Handles what the coordinator sent (with the checkpoint signal blocked); a panic ends the
/// process, since it may be inside a signal handler.
pub(crate) fn serve_caught() {
    if std::panic::catch_unwind(serve).is_err() {
        say("the checkpoint handler failed; ending the process");
        sys::exit_now(70);
    }
}

/// Handles what the coordinator sent.
fn serve() {
    let Some(r) = rank() else {
        return;
    };
    if r.pid != std::process::id() || r.closed || r.handover.is_some() {
        return;
    }
    let messages = match r.control.poll() {
        Ok(m) => m,
        Err(e) => {
            r.close();
            if !matches!(e, engine::ControlError::Closed) {
                say(&chain(&e));
            }
            return;
        }
    };
    for message in messages {
        match message {
            Message::Checkpoint(c) => {
                r.pending = Some(c.epoch);
                let count = SafepointCount {
                    epoch: c.epoch,
                    rank: r.rank,
                    count: 0,
                };
                send(&mut r.control, &Message::SafepointCount(count));
            }
            Message::CheckpointAt(at) if r.pending == Some(at.epoch) => {
                r.pending = None;
                if r.checkpoint(at.epoch, &at.dir) == Taken::Restored {
                    // The rest of the input came from the old job's connection.
                    return;
                }
            }
            Message::CheckpointCancel(c) if r.pending == Some(c.epoch) => r.pending = None,
            Message::MigrateOut(m) => {
                let failed = wire::MigrateFailed {
                    rank: r.rank,
                    seq: m.seq,
                    reason: "a program without MPI cannot migrate".into(),
                };
                send(&mut r.control, &Message::MigrateFailed(failed));
            }
            Message::Error(reason) => say(&format!("the coordinator reports: {reason}")),
            _ => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Taken {
    /// The image is written (or failed) and reported; the program goes on.
    Written,
    /// This is a process restored from the image, now a rank of its new job.
    Restored,
}

impl Rank {
    /// Captures the process into `dir` as checkpoint `epoch` and reports the part.
    fn checkpoint(&mut self, epoch: u64, dir: &str) -> Taken {
        let codec = match &self.codec {
            Ok(c) => *c,
            Err(why) => {
                let why = why.clone();
                self.fail(epoch, why);
                return Taken::Written;
            }
        };
        match image::ChildrenLeftBehind::find() {
            Ok(None) => {}
            Ok(Some(children)) => {
                // A reason that passes: the coordinator asks again and says why, so nothing
                // goes to the program's stderr (a shell's command substitution or a fork
                // awaiting its `waitpid` is over in a moment).
                self.refuse(epoch, children.to_string(), true);
                return Taken::Written;
            }
            Err(e) => {
                self.fail(epoch, format!("listing its child processes failed: {e}"));
                return Taken::Written;
            }
        }
        let path = Path::new(dir).join(image::image_file_name(self.rank));
        let options = CaptureOptions {
            exclude_dirs: Vec::new(),
            compress: codec,
            background: false,
        };
        let sigchld = sys::ChildSignal::default_while_writing();
        let captured = image::capture_in_child_chained(&path, &options, &mut self.chain);
        let written = match captured {
            Ok(ChildOutcome::Started(mut writer)) => writer.wait(),
            Ok(ChildOutcome::Restored) => {
                sigchld.restore();
                self.rejoin();
                return Taken::Restored;
            }
            Err(e) => Err(e),
        };
        sigchld.restore();
        match written {
            Ok(()) => self.chain.written(&path),
            Err(_) => self.chain.failed(),
        }
        let part = written
            .map_err(|e| format!("writing the image of rank {} failed: {e}", self.rank))
            .and_then(|()| {
                crs::write_image_part(Path::new(dir), &path, &self.job, epoch, self.rank)
                    .map_err(|e| e.to_string())
            });
        match part {
            Ok(done) => self.done(done),
            Err(why) => self.fail(epoch, why),
        }
        Taken::Written
    }

    fn done(&mut self, done: PartDone) {
        send(&mut self.control, &Message::PartDone(done));
    }

    fn fail(&mut self, epoch: u64, reason: String) {
        say(&format!("checkpoint {epoch} failed: {reason}"));
        self.refuse(epoch, reason, false);
    }

    /// Tells the coordinator that this rank cannot take checkpoint `epoch`; `retry`: the
    /// reason passes, and the coordinator may ask again.
    fn refuse(&mut self, epoch: u64, reason: String, retry: bool) {
        let failed = CheckpointFailed {
            epoch,
            rank: self.rank,
            reason,
            retry,
        };
        send(&mut self.control, &Message::CheckpointFailed(failed));
    }

    /// In a restored process: joins the new job (the restorer's hand-over) at the old
    /// connection's descriptor number, so that `self.control` works on. A rank that cannot
    /// join ends: its job waits for it, and it has nothing to report to.
    fn rejoin(&mut self) {
        if let Err(why) = self.try_rejoin() {
            say(&format!(
                "rank {} was restored from its image but could not join the job: {why}",
                self.rank
            ));
            sys::exit_now(1);
        }
    }

    fn try_rejoin(&mut self) -> Result<(), String> {
        let vars = image::take_restart_env()
            .ok_or("the restorer handed over no environment (descriptor 1000)")?;
        let fd = self.control.raw_fd();
        image::reserve_fds(&[fd]).map_err(|e| format!("cannot keep descriptor {fd}: {e}"))?;
        let lookup = |name: &'static str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let launch = Launch::read(&lookup).map_err(|e| chain(&e))?;
        if launch.rank != self.rank {
            return Err(format!(
                "the image is rank {}, but it was restored as rank {}",
                self.rank, launch.rank
            ));
        }
        self.pid = std::process::id();
        let stream = launch.join().map_err(|e| chain(&e))?;
        image::replace_placeholder(stream.as_fd(), fd)
            .map_err(|e| format!("cannot place the control connection: {e}"))?;
        drop(stream);
        self.job = launch.job;
        self.control.forget_input();
        self.pending = None;
        self.closed = false;
        image::attention::async_signal(fd, image::attention::signal(), true)
            .map_err(|e| format!("cannot arm the checkpoint signal: {e}"))
    }

    /// The connection is gone: no more signals for it.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        let _ = image::attention::async_signal(
            self.control.raw_fd(),
            image::attention::signal(),
            false,
        );
    }
}

/// At `exit`: a checkpoint this rank will not take fails, and the coordinator learns that the
/// rank exits (as MPI_Finalize tells it). `_exit` and fatal signals skip this; the node's
/// waitpid reports those.
extern "C" fn leave() {
    sys::set_blocked(image::attention::signal(), true);
    let Some(r) = rank() else {
        return;
    };
    if r.pid != std::process::id() || r.closed || r.handover.is_some() {
        return;
    }
    let requested = r
        .control
        .poll()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| match m {
            Message::Checkpoint(c) => Some(c.epoch),
            _ => None,
        });
    let unanswered: Vec<u64> = r.pending.take().into_iter().chain(requested).collect();
    for epoch in unanswered {
        let reason = format!("rank {} is exiting", r.rank);
        r.fail(epoch, reason);
    }
    let rank = r.rank;
    send(&mut r.control, &Message::Exit(Exit { rank }));
    r.close();
}
