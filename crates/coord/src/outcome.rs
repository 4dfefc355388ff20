//! How a job ended, and the exit status of `mpicr run` that follows from it.

use node::{RankExit, signal_name};
use rustix::process::Signal;

/// The end of a job: success, or the first thing that went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every rank exited with status 0.
    Success,
    /// This rank was the first to fail.
    RankFailed(RankExit),
    /// This rank's restorer (`mpicr-restore`) failed, or the restored process ended before it
    /// rejoined the job: the first failure of a restart from process images.
    RestoreFailed(RankExit),
    /// A rank asked to end the job (MPI_Abort).
    Aborted {
        rank: u32,
        pid: u32,
        code: i32,
        reason: String,
    },
    /// `mpicr run` received this signal and ended the job.
    Interrupted { signal: i32 },
    /// A checkpoint with `--terminate` was committed and the job ended after it.
    Checkpointed { job: String, snapshot: String },
    /// A node's daemon failed, taking these ranks with it.
    NodeFailed {
        node: String,
        ranks: std::ops::Range<u32>,
        cause: String,
    },
}

/// Signals that end a process from outside (a user's `kill`, the kernel's OOM killer, a
/// hang-up), whatever it was doing.
const FROM_OUTSIDE: [Signal; 4] = [Signal::KILL, Signal::TERM, Signal::INT, Signal::HUP];

impl Outcome {
    /// How a rank's failure before it rejoined a restarted job counts: as the restore's own
    /// failure (the restorer refused the image, or the restore crashed), which the same
    /// snapshot would repeat, or, killed from outside, as the rank's failure, which a recovery
    /// may retry like any other.
    pub fn of_restore(exit: RankExit) -> Self {
        match exit.status {
            node::ExitStatus::Signaled(s) if FROM_OUTSIDE.iter().any(|f| f.as_raw() == s) => {
                Self::RankFailed(exit)
            }
            _ => Self::RestoreFailed(exit),
        }
    }

    /// The exit status of `mpicr run`: 0, the failed rank's status as a shell reports it
    /// (128 + signal for a signal), the abort code, or 128 + the signal received. An abort
    /// whose code would read as success (0 modulo 256) gives 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Success | Self::Checkpointed { .. } => 0,
            Self::RankFailed(exit) | Self::RestoreFailed(exit) => {
                low_byte(exit.status.shell_code())
            }
            Self::Aborted { code, .. } => match low_byte(*code) {
                0 => 1,
                c => c,
            },
            Self::Interrupted { signal } => low_byte(128 + signal),
            Self::NodeFailed { .. } => 1,
        }
    }

    /// What ended the job, as a clause: the line of [`describe`](Self::describe) without its
    /// "; ending the job".
    pub fn cause(&self) -> String {
        let line = self
            .describe()
            .unwrap_or_else(|| "every rank exited with status 0".to_owned());
        line.strip_suffix("; ending the job")
            .map_or_else(|| line.clone(), str::to_owned)
    }

    /// The line that tells the user what happened, without the `mpicr: ` prefix.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::Success => None,
            Self::RankFailed(exit) => Some(format!(
                "rank {} (pid {}) {}; ending the job",
                exit.rank, exit.pid, exit.status
            )),
            Self::RestoreFailed(exit) => Some(format!(
                "the restore of rank {} failed: mpicr-restore (pid {}) {}; ending the job",
                exit.rank, exit.pid, exit.status
            )),
            Self::Aborted {
                rank,
                pid,
                code,
                reason,
            } => Some(format!(
                "rank {rank} (pid {pid}) called abort with code {code}: {reason}"
            )),
            Self::NodeFailed { node, ranks, cause } => {
                let ranks = match ranks.len() {
                    1 => format!("rank {}", ranks.start),
                    _ => format!("ranks {}-{}", ranks.start, ranks.end.saturating_sub(1)),
                };
                Some(format!(
                    "node {node} ({ranks}) failed: {cause}; ending the job"
                ))
            }
            Self::Checkpointed { job, snapshot } => {
                Some(format!("job {job} ended after checkpoint {snapshot}"))
            }
            Self::Interrupted { signal } => Some(match signal_name(*signal) {
                Some(name) => format!("received {name}; ending the job"),
                None => format!("received signal {signal}; ending the job"),
            }),
        }
    }
}

fn low_byte(code: i32) -> u8 {
    (code & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use node::ExitStatus;

    use super::*;

    #[test]
    fn codes_and_lines() {
        let failed = Outcome::RankFailed(RankExit {
            rank: 2,
            pid: 4711,
            status: ExitStatus::Signaled(9),
        });
        assert_eq!(failed.exit_code(), 137);
        assert_eq!(
            failed.describe().unwrap(),
            "rank 2 (pid 4711) was killed by signal 9 (SIGKILL); ending the job"
        );
        let exited = Outcome::RankFailed(RankExit {
            rank: 1,
            pid: 4710,
            status: ExitStatus::Exited(3),
        });
        assert_eq!(exited.exit_code(), 3);
        assert_eq!(
            exited.describe().unwrap(),
            "rank 1 (pid 4710) exited with status 3; ending the job"
        );
        assert_eq!(exited.cause(), "rank 1 (pid 4710) exited with status 3");
        let restore = Outcome::RestoreFailed(RankExit {
            rank: 1,
            pid: 4712,
            status: ExitStatus::Exited(1),
        });
        assert_eq!(restore.exit_code(), 1);
        assert_eq!(
            restore.describe().unwrap(),
            "the restore of rank 1 failed: mpicr-restore (pid 4712) exited with status 1; \
             ending the job"
        );
        // A restore the image made fail or that crashed, against a restorer killed from
        // outside (counted as the rank's failure: the job may recover from it).
        let restorer = |status| RankExit {
            rank: 1,
            pid: 4712,
            status,
        };
        for own in [ExitStatus::Exited(1), ExitStatus::Signaled(11)] {
            assert_eq!(
                Outcome::of_restore(restorer(own)),
                Outcome::RestoreFailed(restorer(own))
            );
        }
        let killed = ExitStatus::Signaled(9);
        assert_eq!(
            Outcome::of_restore(restorer(killed)),
            Outcome::RankFailed(restorer(killed))
        );
        let abort = |code| Outcome::Aborted {
            rank: 0,
            pid: 1,
            code,
            reason: "r".into(),
        };
        assert_eq!(abort(7).exit_code(), 7);
        assert_eq!(abort(0).exit_code(), 1);
        assert_eq!(abort(256).exit_code(), 1);
        assert_eq!(
            abort(7).describe().unwrap(),
            "rank 0 (pid 1) called abort with code 7: r"
        );
        assert_eq!(Outcome::Interrupted { signal: 2 }.exit_code(), 130);
        assert_eq!(
            Outcome::Interrupted { signal: 15 }.describe().unwrap(),
            "received SIGTERM; ending the job"
        );
        assert_eq!(Outcome::Success.exit_code(), 0);
        let checkpointed = Outcome::Checkpointed {
            job: "heat".into(),
            snapshot: "heat.3".into(),
        };
        assert_eq!(checkpointed.exit_code(), 0);
        assert_eq!(
            checkpointed.describe().unwrap(),
            "job heat ended after checkpoint heat.3"
        );
    }
}
