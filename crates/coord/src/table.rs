//! The job's process table: one row per rank, as `mpicr status` and the REFRESH message show it.

use node::ExitStatus;
use thiserror::Error;
use wire::{ProcEntry, ProcState, Register};

/// Why a rank's registration was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegisterError {
    #[error("rank {rank} does not exist in a job of {size} ranks")]
    NoSuchRank { rank: u32, size: u32 },
    #[error("rank {rank} has already registered")]
    Duplicate { rank: u32 },
    #[error("rank {rank} has already ended")]
    Ended { rank: u32 },
    #[error("rank {rank} was not started yet")]
    NotStarted { rank: u32 },
    #[error("rank {rank} does not run on node {node}")]
    WrongNode { rank: u32, node: String },
    #[error(
        "pid {pid} is not the process started as rank {rank} (pid {spawned}) nor one of its descendants"
    )]
    ForeignPid { rank: u32, pid: u32, spawned: u32 },
}

/// The table and what the node knows about each rank.
#[derive(Debug)]
pub(crate) struct ProcessTable {
    entries: Vec<ProcEntry>,
    /// The pid the node started for each rank, 0 until started. A registered rank's table
    /// pid is the process that registered, which may be a descendant of this one.
    spawned: Vec<u32>,
}

impl ProcessTable {
    pub(crate) fn new(size: u32, node: &str) -> Self {
        let entries = (0..size)
            .map(|rank| ProcEntry {
                rank,
                node: node.to_owned(),
                pid: 0,
                state: ProcState::Spawned,
                data_addr: String::new(),
            })
            .collect();
        Self {
            entries,
            spawned: vec![0; size as usize],
        }
    }

    /// A table whose ranks are placed on nodes: `nodes[rank]`.
    pub(crate) fn placed(nodes: &[String]) -> Self {
        let mut table = Self::new(nodes.len() as u32, "");
        for (entry, node) in table.entries.iter_mut().zip(nodes) {
            entry.node.clone_from(node);
        }
        table
    }

    /// The node `rank` is placed on.
    pub(crate) fn placed_on(&self, rank: u32) -> Option<&str> {
        self.entries.get(rank as usize).map(|e| e.node.as_str())
    }

    pub(crate) fn size(&self) -> u32 {
        self.entries.len() as u32
    }

    pub(crate) fn entries(&self) -> &[ProcEntry] {
        &self.entries
    }

    /// The node started `rank` as `pid`.
    pub(crate) fn set_spawned(&mut self, rank: u32, pid: u32) {
        if let Some(entry) = self.entries.get_mut(rank as usize) {
            entry.pid = pid;
            self.spawned[rank as usize] = pid;
        }
    }

    /// The pid the node started as `rank` (0 before).
    pub(crate) fn spawned_pid(&self, rank: u32) -> u32 {
        self.spawned.get(rank as usize).copied().unwrap_or(0)
    }

    /// The row of `rank`, to change (a migration moves it).
    pub(crate) fn entry_mut(&mut self, rank: u32) -> Option<&mut ProcEntry> {
        self.entries.get_mut(rank as usize)
    }

    /// Whether the node has started `rank` (false also for a rank that does not exist).
    pub(crate) fn is_spawned(&self, rank: u32) -> bool {
        self.spawned.get(rank as usize).is_some_and(|&pid| pid != 0)
    }

    /// Records a registration. `descends(pid, spawned)` says whether `pid` is the started
    /// process or one of its descendants.
    pub(crate) fn register(
        &mut self,
        register: &Register,
        descends: impl Fn(u32, u32) -> bool,
    ) -> Result<(), RegisterError> {
        let rank = register.rank;
        let size = self.size();
        let entry = self
            .entries
            .get_mut(rank as usize)
            .ok_or(RegisterError::NoSuchRank { rank, size })?;
        match entry.state {
            ProcState::Spawned => {}
            ProcState::Running | ProcState::Finalized => {
                return Err(RegisterError::Duplicate { rank });
            }
            ProcState::Exited(_) | ProcState::Signaled(_) => {
                return Err(RegisterError::Ended { rank });
            }
        }
        let spawned = self.spawned[rank as usize];
        if spawned == 0 {
            return Err(RegisterError::NotStarted { rank });
        }
        if !descends(register.pid, spawned) {
            return Err(RegisterError::ForeignPid {
                rank,
                pid: register.pid,
                spawned,
            });
        }
        entry.pid = register.pid;
        entry.node = register.host.clone();
        entry.data_addr = register.data_addr.clone();
        entry.state = ProcState::Running;
        Ok(())
    }

    /// Whether every rank has registered (and so the REFRESH can go out).
    pub(crate) fn all_registered(&self) -> bool {
        self.entries.iter().all(|e| e.state != ProcState::Spawned)
    }

    /// A registered rank left MPI cleanly.
    pub(crate) fn finalize(&mut self, rank: u32) {
        if let Some(entry) = self.entries.get_mut(rank as usize)
            && entry.state == ProcState::Running
        {
            entry.state = ProcState::Finalized;
        }
    }

    /// The rank's process ended. Returns whether it had registered (a restored rank that
    /// ends without registering never left its restorer).
    pub(crate) fn set_ended(&mut self, rank: u32, status: ExitStatus) -> bool {
        let Some(entry) = self.entries.get_mut(rank as usize) else {
            return false;
        };
        let registered = entry.state != ProcState::Spawned;
        entry.state = match status {
            ExitStatus::Exited(code) => ProcState::Exited(code),
            ExitStatus::Signaled(signal) => ProcState::Signaled(signal),
            ExitStatus::Unknown => ProcState::Exited(status.shell_code()),
        };
        registered
    }

    /// The pid the table shows for `rank`.
    pub(crate) fn pid(&self, rank: u32) -> u32 {
        self.entries.get(rank as usize).map_or(0, |e| e.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(rank: u32, pid: u32) -> Register {
        Register {
            rank,
            pid,
            host: "h".into(),
            data_addr: format!("a{rank}"),
        }
    }

    #[test]
    fn registration_rules() {
        let mut t = ProcessTable::new(2, "n");
        let exact = |pid: u32, spawned: u32| pid == spawned;
        assert_eq!(
            t.register(&reg(0, 10), exact),
            Err(RegisterError::NotStarted { rank: 0 })
        );
        t.set_spawned(0, 10);
        t.set_spawned(1, 11);
        assert_eq!(
            t.register(&reg(2, 10), exact),
            Err(RegisterError::NoSuchRank { rank: 2, size: 2 })
        );
        assert_eq!(
            t.register(&reg(0, 99), exact),
            Err(RegisterError::ForeignPid {
                rank: 0,
                pid: 99,
                spawned: 10
            })
        );
        t.register(&reg(0, 10), exact).unwrap();
        assert_eq!(
            t.register(&reg(0, 10), exact),
            Err(RegisterError::Duplicate { rank: 0 })
        );
        assert!(!t.all_registered());
        t.register(&reg(1, 11), exact).unwrap();
        assert!(t.all_registered());
        t.finalize(1);
        t.set_ended(0, ExitStatus::Signaled(9));
        assert_eq!(t.entries()[1].state, ProcState::Finalized);
        assert_eq!(t.entries()[0].state, ProcState::Signaled(9));
        assert_eq!(t.entries()[0].data_addr, "a0");
    }
}
