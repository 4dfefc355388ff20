//! `mpicr gc` outside a running job: removing what removed snapshots kept in node stores.
//!
//! A snapshot of a job run with `--storage` keeps its parts, mirrors and parity files in the
//! stores of its nodes. Its manifest names those nodes (the placement, each part's `nodes`,
//! the parity holders) and records how the job reached them: `extra.storage` (the `--storage`
//! template) and `extra.launcher`. Once the snapshot store has removed such a snapshot and kept
//! its manifest as a record (`store::NodeRecord`), `mpicr gc` starts `mpicr node-prune` on each
//! of those nodes through that launcher, every node at once, and forgets a record only when
//! every node of it has answered. Inside a running job the daemons prune instead
//! (STORE_KEEP).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use store::Manifest;

use crate::hosts::Launcher;
use crate::nodes::node_storage;
use store::ParityEntry;

/// How long one node may take to answer before its launcher is killed.
pub const PRUNE_TIMEOUT: Duration = Duration::from_secs(60);

/// The command that removes epochs from one node's store, and the records it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    pub node: String,
    /// The launcher's command line running `mpicr node-prune` on the node.
    pub command: Vec<String>,
    /// The job and epochs it removes there.
    pub job: String,
    pub epochs: Vec<u64>,
    /// Indexes (into the manifests given to [`plan`]) of the removed snapshots it serves.
    pub records: Vec<usize>,
}

/// The nodes that may hold something of a snapshot: its placement, the holders of each
/// part and of each parity file, each once, in that order.
pub fn snapshot_nodes(manifest: &Manifest) -> Vec<String> {
    let parity = manifest
        .extra
        .iter()
        .filter_map(|(key, value)| ParityEntry::decode(key, value))
        .map(|entry| entry.holder);
    let mut nodes: Vec<String> = Vec::new();
    let all = manifest
        .placement
        .iter()
        .map(|(_, node)| node.clone())
        .chain(manifest.parts.iter().flat_map(|p| p.nodes.iter().cloned()))
        .chain(parity);
    for node in all {
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    nodes
}

/// What one command serves: (launcher, node, store directory, job).
type WorkKey = (String, String, String, String);

/// The commands that remove the node copies of the removed snapshots `records`: one per node,
/// store and launcher, with every epoch of that job it holds. `launcher` (`mpicr gc
/// --launcher`) replaces the recorded one. A snapshot that does not say how to reach its
/// nodes is returned with the reason instead. `program` is the `mpicr` the nodes run.
pub fn plan(
    records: &[&Manifest],
    launcher: Option<&Launcher>,
    program: &Path,
) -> (Vec<Prune>, Vec<(usize, String)>) {
    let mut unusable = Vec::new();
    let mut work: BTreeMap<WorkKey, (Vec<u64>, Vec<usize>)> = BTreeMap::new();
    for (index, manifest) in records.iter().enumerate() {
        let name = format!("{}.{}", manifest.job, manifest.epoch);
        let Some(template) = manifest.extra.get("storage") else {
            unusable.push((
                index,
                format!("snapshot {name} does not record the nodes' store directory (--storage)"),
            ));
            continue;
        };
        let recorded = manifest.extra.get("launcher").map(|s| Launcher::parse(s));
        let how = match (launcher, recorded) {
            (Some(given), _) => given.clone(),
            (None, Some(Ok(recorded))) => recorded,
            (None, Some(Err(_)) | None) => {
                unusable.push((
                    index,
                    format!(
                        "snapshot {name} does not record how its nodes are reached; give --launcher"
                    ),
                ));
                continue;
            }
        };
        for node in snapshot_nodes(manifest) {
            let key = (
                how.spec(),
                node.clone(),
                node_storage(template, &node),
                manifest.job.clone(),
            );
            let (epochs, served) = work.entry(key).or_default();
            if !epochs.contains(&manifest.epoch) {
                epochs.push(manifest.epoch);
            }
            served.push(index);
        }
    }
    let prunes = work
        .into_iter()
        .map(|((how, node, storage, job), (epochs, records))| {
            let mut daemon = vec![
                program.display().to_string(),
                "node-prune".to_owned(),
                "--job".to_owned(),
                job.clone(),
                "--storage".to_owned(),
                storage,
            ];
            daemon.extend(epochs.iter().map(u64::to_string));
            // `how` came from a Launcher, so it parses again.
            let command = Launcher::parse(&how)
                .map(|l| l.command(&node, &daemon))
                .unwrap_or_default();
            Prune {
                node,
                command,
                job,
                epochs,
                records,
            }
        })
        .collect();
    (prunes, unusable)
}

/// A started prune: the launcher's process and what it says on stderr.
struct Running {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

/// Runs every prune at once and waits for each (at most [`PRUNE_TIMEOUT`], then its launcher's
/// process group is killed); `done` is told how many have ended after each end. Returns, in
/// the order of `prunes`, `Ok` or why that node's copies were not removed.
pub fn run(prunes: &[Prune], mut done: impl FnMut(usize)) -> Vec<Result<(), String>> {
    let mut results: Vec<Option<Result<(), String>>> = vec![None; prunes.len()];
    let mut running: Vec<Option<Running>> = prunes
        .iter()
        .enumerate()
        .map(|(i, prune)| match start(&prune.command) {
            Ok(run) => Some(run),
            Err(why) => {
                results[i] = Some(Err(why));
                None
            }
        })
        .collect();
    let mut ended = results.iter().filter(|r| r.is_some()).count();
    if ended > 0 {
        done(ended);
    }
    while ended < prunes.len() {
        thread::sleep(Duration::from_millis(20));
        for (i, slot) in running.iter_mut().enumerate() {
            let Some(run) = slot.as_mut() else {
                continue;
            };
            let status = match run.child.try_wait() {
                Ok(Some(status)) => Some(Ok(status)),
                Ok(None) if run.started.elapsed() > PRUNE_TIMEOUT => {
                    if let Some(group) = rustix::process::Pid::from_raw(run.child.id() as i32) {
                        let _ = rustix::process::kill_process_group(
                            group,
                            rustix::process::Signal::KILL,
                        );
                    }
                    let _ = run.child.wait();
                    Some(Err(format!(
                        "it did not answer within {} s (its launcher was killed)",
                        PRUNE_TIMEOUT.as_secs()
                    )))
                }
                Ok(None) => None,
                Err(e) => Some(Err(format!("cannot wait for its launcher: {e}"))),
            };
            let Some(status) = status else {
                continue;
            };
            let said = run
                .stderr
                .take()
                .and_then(|reader| reader.join().ok())
                .unwrap_or_default();
            results[i] = Some(status.and_then(|status| match status.code() {
                Some(0) => Ok(()),
                // ssh and `ip netns exec` end with 255 when they cannot reach the node.
                Some(255) => Err(format!("it cannot be reached (status 255){said}")),
                _ => Err(format!("removing the copies failed ({status}){said}")),
            }));
            *slot = None;
            ended += 1;
            done(ended);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("it was not started".to_owned())))
        .collect()
}

/// Starts a launcher command in its own process group, stdin closed, stderr collected.
fn start(command: &[String]) -> Result<Running, String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "the launcher command is empty".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            said(&text)
        })
    });
    Ok(Running {
        child,
        stderr,
        started: Instant::now(),
    })
}

/// The last lines a node's command wrote on stderr, as `: line; line`, or nothing.
fn said(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = &lines[lines.len().saturating_sub(3)..];
    if last.is_empty() {
        String::new()
    } else {
        format!(": {}", last.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(epoch: u64, extra: &[(&str, &str)]) -> Manifest {
        let part = |rank: u32, nodes: &[&str]| store::PartInfo {
            rank,
            checkpointer: "self".into(),
            file: store::part_file_name(rank),
            size: 1,
            crc32c: 0,
            sections: Vec::new(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        };
        Manifest {
            format_version: 2,
            job: "j".into(),
            epoch,
            created: 0,
            command: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            placement: vec![(0, "a".into()), (1, "b".into())],
            parts: vec![part(0, &["a", "b"]), part(1, &["b", "c"])],
            in_transit_messages: 0,
            safepoint: 0,
            transport: "tcp".into(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn one_command_per_node_with_every_epoch_it_holds() {
        let recorded = [
            ("storage", "/s/{node}"),
            ("launcher", "ip netns exec {node}"),
        ];
        let mut with_parity = manifest(4, &recorded);
        with_parity
            .extra
            .insert("parity.parity-0-0".into(), "d 10 7 0,1".into());
        let bare = manifest(5, &[("storage", "/s/{node}")]);
        let old = manifest(3, &recorded);
        let (prunes, unusable) = plan(&[&old, &with_parity, &bare], None, Path::new("/bin/mpicr"));
        assert_eq!(unusable.len(), 1);
        assert_eq!(unusable[0].0, 2);
        assert!(unusable[0].1.contains("give --launcher"), "{unusable:?}");
        let nodes: Vec<&str> = prunes.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(nodes, ["a", "b", "c", "d"]);
        assert_eq!(
            prunes[1].command,
            [
                "ip",
                "netns",
                "exec",
                "b",
                "/bin/mpicr",
                "node-prune",
                "--job",
                "j",
                "--storage",
                "/s/b",
                "3",
                "4"
            ]
        );
        assert_eq!(prunes[1].records, [0, 1]);
        assert_eq!(prunes[3].epochs, [4], "only the parity holder of epoch 4");
        // A launcher given to gc serves the snapshot that recorded none.
        let ssh = Launcher::parse("slurm").unwrap();
        let (prunes, unusable) = plan(&[&bare], Some(&ssh), Path::new("/bin/mpicr"));
        assert!(unusable.is_empty());
        assert_eq!(prunes[0].command[0], "srun");
    }

    #[test]
    fn a_node_that_cannot_be_reached_or_fails_is_said_apart() {
        let prune = |script: &str| Prune {
            node: "n".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            job: "j".into(),
            epochs: vec![1],
            records: vec![0],
        };
        let mut seen = Vec::new();
        let results = run(
            &[
                prune("exit 0"),
                prune("echo 'ssh: no route' >&2; exit 255"),
                prune("echo cannot remove >&2; exit 1"),
            ],
            |n| seen.push(n),
        );
        assert_eq!(seen.last(), Some(&3));
        assert!(results[0].is_ok());
        let unreachable = results[1].as_ref().unwrap_err();
        assert!(
            unreachable.contains("cannot be reached") && unreachable.contains("no route"),
            "{unreachable}"
        );
        let failed = results[2].as_ref().unwrap_err();
        assert!(failed.contains("cannot remove"), "{failed}");
    }
}
