//! `POST /api/job/JOB/migrate {"rank": R, "node": "NAME"}`: moves a rank of a running job to
//! another of its nodes, as `mpicr migrate JOB --rank R --to NAME` does
//! (`coord::request_migration`), and answers once the rank computes there.
//!
//! The rank and node are checked against the job's process table and published nodes first,
//! so that a request that can never succeed is a 400 naming what is wrong; everything the
//! coordinator refuses or that fails (a migration already running, a checkpoint being taken,
//! a job on one machine, a restore that failed) is its own sentence.

use coord::{ClientError, JobRef, RuntimeDir, checkpoint_status, job_status, request_migration};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;
use wire::MigrateDone;

/// The body of a migration request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrateBody {
    pub(crate) rank: u32,
    pub(crate) node: String,
}

/// Reads a migration request's body, or the sentence that refuses it.
pub(crate) fn parse_migrate_body(body: &[u8]) -> Result<MigrateBody, String> {
    let refuse = |why: String| {
        format!("the body must be a JSON object like {{\"rank\": 1, \"node\": \"NAME\"}}: {why}")
    };
    // Parsed as a value first: serde would also take a struct from an array.
    let value: Value = serde_json::from_slice(body).map_err(|e| refuse(e.to_string()))?;
    if !value.is_object() {
        return Err(refuse(format!("this is {value}")));
    }
    let request: MigrateBody = serde_json::from_value(value).map_err(|e| refuse(e.to_string()))?;
    if request.node.is_empty() {
        return Err(refuse("the node is empty".into()));
    }
    Ok(request)
}

/// Why a migration asked for through the dashboard did not happen.
#[derive(Debug, Error)]
pub(crate) enum MigrateError {
    #[error("job {job} has no rank {rank} (it has {size})")]
    NoRank { job: String, rank: u32, size: usize },
    #[error("node {node} is not a node of job {job} with a daemon (its nodes: {nodes})")]
    NotANode {
        job: String,
        node: String,
        nodes: String,
    },
    #[error("rank {rank} is already on node {node}")]
    SameNode { rank: u32, node: String },
    /// The job's answer, or why it could not be asked.
    #[error(transparent)]
    Job(#[from] ClientError),
}

/// Checks the request against the job as it runs now, then asks the job and waits.
pub(crate) fn migrate(
    dir: &RuntimeDir,
    job: &JobRef,
    request: &MigrateBody,
) -> Result<MigrateDone, MigrateError> {
    let status = job_status(dir, job)?;
    let Some(entry) = status.ranks.get(request.rank as usize) else {
        return Err(MigrateError::NoRank {
            job: status.job,
            rank: request.rank,
            size: status.ranks.len(),
        });
    };
    // A job on one machine publishes no nodes: the coordinator says why it cannot migrate.
    let nodes = checkpoint_status(dir, &status.job)
        .map(|c| c.nodes)
        .unwrap_or_default();
    if !nodes.is_empty() && !nodes.contains(&request.node) {
        return Err(MigrateError::NotANode {
            job: status.job,
            node: request.node.clone(),
            nodes: nodes.join(", "),
        });
    }
    if entry.node == request.node {
        return Err(MigrateError::SameNode {
            rank: request.rank,
            node: request.node.clone(),
        });
    }
    Ok(request_migration(dir, job, request.rank, &request.node)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_bodies() {
        let ok = parse_migrate_body(br#"{"rank": 3, "node": "n2"}"#).expect("parsed");
        assert_eq!((ok.rank, ok.node.as_str()), (3, "n2"));
        for bad in [
            &b""[..],
            b"{",
            b"{}",
            b"[3, \"n2\"]",
            br#"{"rank": 3}"#,
            br#"{"node": "n2"}"#,
            br#"{"rank": -1, "node": "n2"}"#,
            br#"{"rank": "3", "node": "n2"}"#,
            br#"{"rank": 3, "node": ""}"#,
            br#"{"rank": 3, "node": "n2", "now": true}"#,
        ] {
            let sentence = parse_migrate_body(bad).expect_err("refused");
            assert!(sentence.starts_with("the body must be"), "{sentence}");
        }
    }
}
