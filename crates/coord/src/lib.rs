//! The coordinator of an mpicr job (`mpicr run`): it owns the job's name, its control socket,
//! its shared-memory directory and the process table, starts the ranks through the node
//! crate, and follows the job to its end.
//!
//! `docs/launch.md` describes the contract with the ranks: environment, runtime directory,
//! the control protocol and the cleanup guarantees.
#![forbid(unsafe_code)]

mod activity;
mod checkpoint;
mod client;
mod control_socket;
mod hosts;
mod job_name;
mod launch;
mod migrate;
mod node_gc;
mod nodes;
mod outcome;
mod report;
mod runtime_dir;
mod server;
mod shm_dir;
mod table;

pub use activity::{Migration, MigrationOutcome, MigrationStats, RedundancyBytes};
pub use checkpoint::{
    CheckpointConfig, CheckpointStatus, DEFAULT_CHECKPOINT_TIMEOUT, Progress, Recovery,
    show_duration,
};
pub use client::{
    ClientError, JobRef, checkpoint_status, job_status, live_jobs, query, request_checkpoint,
};
pub use control_socket::SocketError;
pub use hosts::{
    HostSpec, HostsError, Launcher, coordinator_addr, parse_hostfile, parse_hosts, place,
    read_hostfile,
};
pub use job_name::{JobName, JobNameError};
pub use launch::{
    Launch, LaunchConfig, LaunchError, RestartFrom, RunningJob, Stopper, TERMINATION_GRACE,
    Transport,
};
pub use migrate::request_migration;
pub use node_gc::{
    PRUNE_TIMEOUT, Prune, plan as plan_node_prunes, run as run_node_prunes, snapshot_nodes,
};
pub use nodes::NodesConfig;
pub use outcome::Outcome;
pub use report::error_chain;
pub use runtime_dir::{RuntimeDir, RuntimeDirError};
pub use shm_dir::ShmDirError;
pub use table::RegisterError;
