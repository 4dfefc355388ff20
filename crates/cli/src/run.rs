//! `mpicr run`: start a job, pass signals on to it, exit with its status.

use std::path::Path;
use std::process::ExitCode;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use coord::{
    CheckpointConfig, Launch, LaunchConfig, LaunchError, Launcher, NodesConfig, Outcome, Recovery,
    Stopper, error_chain,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use store::Store;

use crate::args::{CheckpointOptions, CrsArg, NodeOptions, RunArgs};
use crate::snapshots::open_store;
use std::ffi::OsString;

use crate::{EXIT_MPICR_ERROR, EXIT_USAGE, say};

/// The status after a signal arrived between two runs of a recovering job (as for SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

pub(crate) fn main(args: RunArgs) -> ExitCode {
    if args.nodes.hosts.is_none() && args.nodes.hostfile.is_none() && args.nodes.storage.is_some() {
        say("--storage, --mirror and --spares need --hosts or --hostfile");
        return ExitCode::from(EXIT_USAGE);
    }
    let crs = args.crs.unwrap_or(CrsArg::Image);
    if crs == CrsArg::SelfCrs
        && let Some(option) = [
            args.compress.as_ref().map(|_| "--compress"),
            args.full_every.map(|_| "--full-every"),
        ]
        .into_iter()
        .flatten()
        .next()
    {
        say(&format!(
            "{option} applies to process images; with --crs self the program writes its own state"
        ));
        return ExitCode::from(EXIT_USAGE);
    }
    let mut command = args.command.into_iter();
    let Some(program) = command.next() else {
        say("no program to run was given; usage: mpicr run -n N [--] PROGRAM [ARGS]...");
        return ExitCode::from(EXIT_USAGE);
    };
    let crs = match crs {
        CrsArg::SelfCrs => "self",
        CrsArg::Image => "image",
    };
    let checkpoint = match open_store(args.checkpoints.snapshot_dir.as_deref())
        .and_then(|store| checkpoint_config(&args.checkpoints, crs.to_owned(), store.root()))
    {
        Ok(config) => config,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let nodes = match nodes_config(&args.nodes) {
        Ok(nodes) => nodes,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    // The image and binding options reach the ranks (and the snapshot's recorded environment)
    // as variables.
    let mut rank_env: Vec<(OsString, OsString)> = Vec::new();
    let bind = node::binding::BindTo::from(args.bind_to);
    if bind != node::binding::BindTo::None {
        rank_env.push((node::binding::BIND_VAR.into(), bind.as_str().into()));
    }
    if let Some(codec) = &args.compress {
        rank_env.push(("MPICR_IMAGE_COMPRESS".into(), codec.into()));
    }
    if let Some(k) = args.full_every {
        rank_env.push(("MPICR_IMAGE_FULL_EVERY".into(), k.to_string().into()));
    }
    let env = (!rank_env.is_empty()).then(|| {
        std::env::vars_os()
            .filter(|(k, _)| {
                k != "MPICR_RESTART_DIR"
                    && k != "MPICR_RESTART_EPOCH"
                    && !rank_env.iter().any(|(n, _)| n == k)
            })
            .chain(rank_env.iter().cloned())
            .collect()
    });
    let config = LaunchConfig {
        size: args.np,
        program,
        args: command.collect(),
        tag_output: args.tag_output,
        transport: args.transport.into(),
        job_name: args.job_name,
        checkpoint,
        env,
        cwd: None,
        restart: None,
        stdout_copy: None,
        nodes,
        recoveries: Default::default(),
        recovering_since: None,
        preload: args.crs == Some(CrsArg::Image),
    };
    // `--dashboard ADDR`: served until the job (with its recoveries) is over.
    let dashboard = match crate::dashboard::for_run(args.dashboard, &config) {
        Ok(dashboard) => dashboard,
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let status = launch(config, &args.checkpoints);
    drop(dashboard);
    status
}

/// The nodes of a job from `--hosts`/`--hostfile` and the options that go with them; `None`
/// for a job on this machine.
pub(crate) fn nodes_config(options: &NodeOptions) -> Result<Option<NodesConfig>, String> {
    let mut hosts = match (&options.hosts, &options.hostfile) {
        (Some(list), _) => coord::parse_hosts(list),
        (None, Some(file)) => coord::read_hostfile(file),
        (None, None) => return Ok(None),
    }
    .map_err(|e| e.to_string())?;
    if options.spares as usize >= hosts.len() {
        return Err(format!(
            "--spares {} leaves no node for the ranks among the {} hosts",
            options.spares,
            hosts.len()
        ));
    }
    let spares = hosts.split_off(hosts.len() - options.spares as usize);
    if options.mirror as usize >= hosts.len() {
        return Err(format!(
            "--mirror {} needs at least {} nodes that run ranks, there are {}",
            options.mirror,
            options.mirror + 1,
            hosts.len()
        ));
    }
    if options.parity > 0 && options.parity as usize >= hosts.len() {
        return Err(format!(
            "--parity {} needs more than {} nodes that run ranks (the parity of a group is kept \
             on a node of another group), there are {}",
            options.parity,
            options.parity,
            hosts.len()
        ));
    }
    if let Some(storage) = &options.storage
        && !storage.starts_with('/')
    {
        return Err(format!(
            "--storage {storage} must be an absolute path (each node's daemon resolves it)"
        ));
    }
    let launcher = Launcher::parse(&options.launcher).map_err(|e| e.to_string())?;
    let listen = coord::coordinator_addr(options.coordinator_addr, &hosts, &launcher)?;
    let daemon_program = std::env::current_exe()
        .map_err(|e| format!("cannot find the mpicr program for the node daemons: {e}"))?;
    Ok(Some(NodesConfig {
        hosts,
        launcher,
        listen,
        heartbeat: options.heartbeat,
        daemon_program,
        storage: options.storage.clone(),
        mirror: options.mirror,
        parity: options.parity,
        spares,
    }))
}

/// The checkpoint settings of a job from the options of `run` or `restart`; `root` is the
/// snapshot directory, already opened (so that a bad one is refused before the job starts).
pub(crate) fn checkpoint_config(
    options: &CheckpointOptions,
    crs: String,
    root: &Path,
) -> Result<CheckpointConfig, String> {
    Ok(CheckpointConfig {
        snapshot_dir: root.to_owned(),
        crs,
        every: options.checkpoint_every,
        keep: options.keep,
        timeout: options.checkpoint_timeout,
    })
}

/// Runs a job to its end on this thread, with SIGINT, SIGTERM and SIGHUP ending the job.
/// With `--max-restarts N`, a rank's failure rolls the job back to its newest snapshot of
/// this run and starts it again, up to N times (synchronized rollback).
pub(crate) fn launch(config: LaunchConfig, options: &CheckpointOptions) -> ExitCode {
    let current: Arc<Mutex<Option<Stopper>>> = Arc::default();
    let interrupted = Arc::new(AtomicBool::new(false));
    if let Err(line) = watch_signals(current.clone(), interrupted.clone()) {
        say(&line);
        return ExitCode::from(EXIT_MPICR_ERROR);
    }
    let mut config = config;
    let mut recoveries = 0;
    // Snapshots newer than this epoch belong to this run; a restart's own snapshot counts too.
    let mut baseline: Option<u64> = config.restart.as_ref().map(|r| r.epoch.saturating_sub(1));
    loop {
        let launch = Launch::new(config.clone());
        *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(launch.stopper());
        if interrupted.load(Ordering::SeqCst) {
            return ExitCode::from(EXIT_INTERRUPTED);
        }
        let job = match launch.start() {
            Ok(job) => job,
            Err(LaunchError::NodeUnreachable { node, why })
                if config.recovering_since.is_some() && config.nodes.is_some() =>
            {
                // A recovery found a node gone for good: its ranks go to a spare or to the
                // surviving nodes, and the recovery starts again.
                let Some(line) = config.nodes.as_mut().and_then(|n| replace_node(n, &node)) else {
                    say(&format!(
                        "node {node} cannot be reached ({why}), and no node is left to take its ranks"
                    ));
                    return ExitCode::from(EXIT_MPICR_ERROR);
                };
                say(&format!("node {node} is lost ({why}); {line}"));
                if let Some(last) = config
                    .recoveries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_mut()
                {
                    last.failure
                        .push_str(&format!("; node {node} lost, {line}"));
                }
                continue;
            }
            Err(LaunchError::NodeFailed { node, why })
                if config.recovering_since.is_some()
                    && recoveries < options.max_restarts
                    && !interrupted.load(Ordering::SeqCst) =>
            {
                // A failure during a recovery: the recovery starts again, from the same
                // snapshot, as the next one.
                recoveries += 1;
                let snapshot = config
                    .recoveries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last()
                    .map(|r| r.snapshot.clone())
                    .unwrap_or_default();
                let failure = format!("node {node} failed during the recovery ({why})");
                say(&format!(
                    "recovering again from snapshot {snapshot} after {failure} (recovery {recoveries} of {})",
                    options.max_restarts
                ));
                config
                    .recoveries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Recovery {
                        failure,
                        snapshot,
                        recovered_ms: None,
                    });
                config.recovering_since = Some(Instant::now());
                continue;
            }
            Err(e) => {
                say(&error_chain(&e));
                return ExitCode::from(EXIT_MPICR_ERROR);
            }
        };
        tracing::info!(job = %job.name(), socket = %job.control_socket().display(), "job started");
        let name = job.name().to_string();
        if let Some(since) = config.recovering_since {
            say(&format!(
                "job {name} restarted: its ranks were started {} ms after the failure",
                since.elapsed().as_millis()
            ));
        }
        let store = Store::open(Some(&config.checkpoint.snapshot_dir)).ok();
        if baseline.is_none() {
            baseline = Some(
                store
                    .as_ref()
                    .and_then(|s| s.epochs(&name).ok()?.last().copied())
                    .unwrap_or(0),
            );
        }
        let (outcome, ended_at): (Outcome, _) = job.wait_timed();
        let failed_at = ended_at.unwrap_or_else(Instant::now);
        let failure = match &outcome {
            Outcome::RankFailed(exit) => {
                format!("rank {} (pid {}) {}", exit.rank, exit.pid, exit.status)
            }
            Outcome::NodeFailed { node, cause, .. } => format!("node {node} failed ({cause})"),
            // Nothing to recover from: success, an abort, an interrupt, or a restore that
            // failed by itself (the same snapshot would fail the same way again;
            // `Outcome::of_restore`).
            _ => return ExitCode::from(outcome.exit_code()),
        };
        if recoveries >= options.max_restarts || interrupted.load(Ordering::SeqCst) {
            if options.max_restarts > 0 {
                say(&format!(
                    "job {name} failed after {recoveries} of {} recoveries",
                    options.max_restarts
                ));
            }
            return ExitCode::from(outcome.exit_code());
        }
        let since = baseline.unwrap_or(0);
        let snapshot = store
            .as_ref()
            .and_then(|s| s.latest(&name).ok().flatten())
            .filter(|s| s.epoch() > since);
        let (Some(store), Some(snapshot)) = (store, snapshot) else {
            say(&format!(
                "job {name} has no snapshot of this run to recover from"
            ));
            return ExitCode::from(outcome.exit_code());
        };
        recoveries += 1;
        say(&format!(
            "recovering job {name} from snapshot {} after {failure} (recovery {recoveries} of {})",
            snapshot.name(),
            options.max_restarts
        ));
        config
            .recoveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Recovery {
                failure,
                snapshot: snapshot.name(),
                recovered_ms: None,
            });
        config = match crate::restart::from_snapshot(&store, &snapshot, config.tag_output, options)
        {
            // The same nodes again (synchronized rollback in place).
            Ok(next) => LaunchConfig {
                nodes: config.nodes.clone(),
                recoveries: config.recoveries.clone(),
                recovering_since: Some(failed_at),
                ..next
            },
            Err(line) => {
                say(&line);
                return ExitCode::from(outcome.exit_code());
            }
        };
        tracing::info!(job = name, elapsed = ?failed_at.elapsed(), "recovery prepared");
    }
}

/// Takes lost `node` out of the job's nodes: a spare takes its place in the host order (so
/// it gets the lost node's block of ranks), or, without spares, the surviving nodes share its
/// ranks. Returns what happened, or `None` when no node is left.
fn replace_node(nodes: &mut NodesConfig, node: &str) -> Option<String> {
    let at = nodes.hosts.iter().position(|h| h.name == node)?;
    if nodes.spares.is_empty() {
        nodes.hosts.remove(at);
        if nodes.hosts.is_empty() {
            return None;
        }
        let left = nodes.hosts.len() as u32;
        nodes.mirror = nodes.mirror.min(left - 1);
        if nodes.parity >= left {
            // One group would be left, with nowhere else to keep its parity.
            nodes.parity = left.saturating_sub(1);
        }
        Some("its ranks move to the surviving nodes".to_owned())
    } else {
        let spare = nodes.spares.remove(0);
        let line = format!("its ranks move to spare node {}", spare.name);
        nodes.hosts[at] = spare;
        Some(line)
    }
}

/// Passes SIGINT, SIGTERM and SIGHUP to the job that runs at the moment.
fn watch_signals(
    current: Arc<Mutex<Option<Stopper>>>,
    interrupted: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                interrupted.store(true, Ordering::SeqCst);
                if let Some(stopper) = current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                {
                    stopper.stop(signal);
                }
            }
        })
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    Ok(())
}
