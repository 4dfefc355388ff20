//! What a job on several nodes publishes besides its checkpoints, for `mpicr status` and the
//! dashboard: its nodes, its migrations and the bytes it copied for redundancy. Kept in the
//! checkpoint status file (`checkpoint::StatusBoard`), one `key=value` line each, and counted
//! from the job's last start (a recovery starts the counts again).

use std::collections::VecDeque;

/// How many finished migrations the status keeps (the counts cover all of them).
const RECENT_MIGRATIONS: usize = 20;

/// The migrations of the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStats {
    /// Migrations whose rank computes on its new node.
    pub done: u64,
    /// Migrations that started and failed (the rank computed on where it was, or its node
    /// failed).
    pub failed: u64,
    /// Sum over the done ones of the time from the request to the restored rank's arrival.
    pub total_us: u64,
    /// Sum over the done ones of the image's copy between the daemons.
    pub transfer_us: u64,
    /// Sum over the done ones of the images' sizes.
    pub bytes: u64,
    /// The last finished migrations, oldest first.
    pub recent: VecDeque<Migration>,
}

/// One finished migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub rank: u32,
    pub from: String,
    pub to: String,
    /// How it ended.
    pub outcome: MigrationOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationOutcome {
    Done {
        total_us: u64,
        transfer_us: u64,
        bytes: u64,
    },
    /// The sentence the requester was told.
    Failed(String),
}

impl MigrationStats {
    /// Counts a finished migration and keeps it among the recent ones.
    pub(crate) fn record(&mut self, migration: Migration) {
        match &migration.outcome {
            MigrationOutcome::Done {
                total_us,
                transfer_us,
                bytes,
            } => {
                self.done += 1;
                self.total_us += total_us;
                self.transfer_us += transfer_us;
                self.bytes += bytes;
            }
            MigrationOutcome::Failed(_) => self.failed += 1,
        }
        if self.recent.len() == RECENT_MIGRATIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(migration);
    }

    /// The status file's lines.
    pub(crate) fn encode(&self, text: &mut String) {
        text.push_str(&format!(
            "migrations={} {} {} {} {}\n",
            self.done, self.failed, self.total_us, self.transfer_us, self.bytes
        ));
        for m in &self.recent {
            let (total, transfer, bytes, failure) = match &m.outcome {
                MigrationOutcome::Done {
                    total_us,
                    transfer_us,
                    bytes,
                } => (total_us.to_string(), *transfer_us, *bytes, String::new()),
                MigrationOutcome::Failed(why) => ("-".to_owned(), 0, 0, why.replace('\n', " ")),
            };
            // The failure is last: it is free text (without newlines).
            text.push_str(&format!(
                "migration={}|{}|{}|{total}|{transfer}|{bytes}|{failure}\n",
                m.rank, m.from, m.to
            ));
        }
    }

    /// Reads a `migrations` or `migration` line's value; other keys are not its.
    pub(crate) fn decode(&mut self, key: &str, value: &str) {
        match key {
            "migrations" => {
                let numbers: Vec<u64> = value.split(' ').filter_map(|n| n.parse().ok()).collect();
                if let [done, failed, total_us, transfer_us, bytes] = numbers[..] {
                    self.done = done;
                    self.failed = failed;
                    self.total_us = total_us;
                    self.transfer_us = transfer_us;
                    self.bytes = bytes;
                }
            }
            "migration" => {
                let fields: Vec<&str> = value.splitn(7, '|').collect();
                if let [rank, from, to, total, transfer, bytes, failure] = fields[..]
                    && let Ok(rank) = rank.parse()
                {
                    let outcome = match total.parse() {
                        Ok(total_us) => MigrationOutcome::Done {
                            total_us,
                            transfer_us: transfer.parse().unwrap_or(0),
                            bytes: bytes.parse().unwrap_or(0),
                        },
                        Err(_) => MigrationOutcome::Failed(failure.to_owned()),
                    };
                    self.recent.push_back(Migration {
                        rank,
                        from: from.to_owned(),
                        to: to.to_owned(),
                        outcome,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Bytes the job copied so that its snapshots survive a node's loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedundancyBytes {
    /// Parts copied to partner nodes (`--mirror K`), each copy counted.
    pub mirrored: u64,
    /// Parity files built (`--parity G`).
    pub parity: u64,
}
