//! `mpicr migrate JOB --rank R --to NODE` and `mpicr drain JOB NODE`: move ranks of a running
//! job (on several nodes, `--crs image`) to other nodes while the other ranks compute on.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use coord::{ClientError, JobRef, RuntimeDir, error_chain, job_status, request_migration};

use crate::progress::Progress;
use crate::{EXIT_MPICR_ERROR, say};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The job: its name, or the pid of its `mpicr run`
    #[arg(value_name = "JOB", value_parser = crate::args::parse_job_ref)]
    pub(crate) job: JobRef,
    /// The rank to move
    #[arg(long, value_name = "R")]
    pub(crate) rank: u32,
    /// The node to move it to (a node of the job)
    #[arg(long = "to", value_name = "NODE")]
    pub(crate) to: String,
}

#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The job: its name, or the pid of its `mpicr run`
    #[arg(value_name = "JOB", value_parser = crate::args::parse_job_ref)]
    pub(crate) job: JobRef,
    /// The node to empty
    #[arg(value_name = "NODE")]
    pub(crate) node: String,
    /// Where to put the ranks (default: the other nodes of the job in turn)
    #[arg(long = "to", value_name = "NODE", value_delimiter = ',')]
    pub(crate) to: Vec<String>,
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Asks for one migration and waits for its end, with a spinner (or one line) meanwhile: the
/// request returns only when the rank computes on its new node, which takes seconds for a
/// large image.
fn migrate_one(
    dir: &RuntimeDir,
    job: &JobRef,
    rank: u32,
    to: &str,
    progress: &Progress,
) -> Result<(), String> {
    progress.phase(&format!("migrating rank {rank} to node {to}"));
    let result = request_migration(dir, job, rank, to);
    progress.clear();
    match result {
        Ok(done) => {
            let line = format!(
                "rank {} moved from {} to {} in {} (image {} bytes, copied in {})",
                done.rank,
                done.from,
                done.to,
                ms(done.total_us),
                done.bytes,
                ms(done.transfer_us)
            );
            let _ = writeln!(std::io::stdout().lock(), "{line}");
            Ok(())
        }
        Err(ClientError::Refused(sentence)) => Err(sentence),
        Err(e @ ClientError::Receive(_)) => Err(format!(
            "the job ended before the migration of rank {rank} was over ({})",
            error_chain(&e)
        )),
        Err(e) => Err(error_chain(&e)),
    }
}

pub(crate) fn main(args: &MigrateArgs) -> ExitCode {
    let result = RuntimeDir::open()
        .map_err(|e| error_chain(&e))
        .and_then(|dir| migrate_one(&dir, &args.job, args.rank, &args.to, &Progress::new()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            say(&line);
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

pub(crate) fn drain(args: &DrainArgs) -> ExitCode {
    match drain_node(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            say(&line);
            ExitCode::from(EXIT_MPICR_ERROR)
        }
    }
}

fn drain_node(args: &DrainArgs) -> Result<(), String> {
    let dir = RuntimeDir::open().map_err(|e| error_chain(&e))?;
    let status = job_status(&dir, &args.job).map_err(|e| error_chain(&e))?;
    let mut nodes: Vec<String> = Vec::new();
    for e in &status.ranks {
        if !nodes.contains(&e.node) {
            nodes.push(e.node.clone());
        }
    }
    if !nodes.contains(&args.node) {
        return Err(format!(
            "no rank of job {} runs on node {} (its nodes: {})",
            status.job,
            args.node,
            nodes.join(", ")
        ));
    }
    let targets: Vec<String> = if args.to.is_empty() {
        nodes.into_iter().filter(|n| *n != args.node).collect()
    } else {
        args.to.clone()
    };
    if targets.is_empty() || targets.contains(&args.node) {
        return Err(format!(
            "node {} cannot be drained: no other node to move its ranks to",
            args.node
        ));
    }
    let ranks: Vec<u32> = status
        .ranks
        .iter()
        .filter(|e| e.node == args.node)
        .map(|e| e.rank)
        .collect();
    say(&format!(
        "draining node {} of job {}: ranks {:?}",
        args.node, status.job, ranks
    ));
    let total = ranks.len() as u64;
    for (i, rank) in ranks.iter().enumerate() {
        let to = &targets[i % targets.len()];
        let progress = Progress::new();
        progress.count(
            &format!("draining node {}: ranks moved", args.node),
            i as u64,
            total,
        );
        migrate_one(&dir, &args.job, *rank, to, &progress)?;
    }
    say(&format!(
        "node {} runs no rank of job {} now",
        args.node, status.job
    ));
    Ok(())
}
