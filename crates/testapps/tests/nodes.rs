//! Jobs on several nodes: three network namespaces on this machine (`netns`), one node daemon
//! in each started with `--launcher 'ip netns exec {node}'`, ranks talking shared memory
//! within a node and TCP between nodes. Each run must give the one-node result, also after a
//! rank or a daemon was killed; a wrong secret on the control port is refused while the job
//! runs on; nothing is left behind. The tests are skipped (with a line on stderr) where
//! namespaces cannot be made (not root). Jobs with node stores (`--storage`) run with
//! `--crs self`, since the default `image` checkpointer cannot use node stores yet; the
//! others run with the default.

mod harness;
mod netns;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::snap::wait_for_snapshots;
use harness::{Out, Sandbox, leftovers, result_line, strs};
use netns::{Cluster, signal};

/// A cluster of 3 nodes and a sandbox, or `None` (test skipped) without root.
fn setup() -> Option<(netns::OneAtATime, Cluster, Sandbox)> {
    netns::setup(3)
}

/// `--hostfile F --launcher 'ip netns exec {node}'` plus `rest`.
fn node_args(sandbox_dir: &std::path::Path, cluster: &Cluster, rest: &[&str]) -> Vec<String> {
    let hostfile = sandbox_dir.join(format!("hosts-{}", cluster.nodes[0].name));
    cluster.hostfile(&hostfile);
    let mut args = vec![
        "--hostfile".to_owned(),
        hostfile.display().to_string(),
        "--launcher".to_owned(),
        "ip netns exec {node}".to_owned(),
    ];
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    args
}

/// The process table of job `name` as JSON, once every rank runs (and rank `rank`'s pid is
/// not `not`).
fn running_table(sandbox: &Sandbox, name: &str, rank: usize, not: u64) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let out = sandbox.mpicr(&["status", name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && v["ranks"]
                .as_array()
                .is_some_and(|r| r.iter().all(|e| e["state"] == "running"))
            && v["ranks"][rank]["pid"].as_u64() != Some(not)
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {name} never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of job `name` is left: no marked process, no node directory, no shm directory.
fn assert_nothing_left(sandbox: &Sandbox, marker_pids: Vec<i32>, name: &str) {
    assert!(marker_pids.is_empty(), "processes left: {marker_pids:?}");
    let runtime = sandbox.snapshots();
    let runtime = runtime
        .ancestors()
        .nth(3)
        .expect("state/mpicr/snapshots is in the sandbox")
        .join("mpicr");
    let left: Vec<_> = std::fs::read_dir(&runtime)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the runtime directory: {left:?}");
    let shm: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&format!("-{name}")))
                .collect()
        })
        .unwrap_or_default();
    assert!(shm.is_empty(), "left in /dev/shm: {shm:?}");
}

#[test]
fn a_message_heavy_job_on_3_nodes_gives_the_one_node_result_and_status_shows_the_nodes() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "6", "--", "ckpt-ring", "120"]));
    let name = format!("ring-{}", cluster.nodes[0].name);
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &["-n", "6", "--", "ckpt-ring", "120", "5"],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    let table = running_table(&sandbox, &name, 0, 0);
    let nodes: Vec<&str> = table["ranks"]
        .as_array()
        .expect("ranks")
        .iter()
        .map(|r| r["node"].as_str().expect("a node"))
        .collect();
    let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        nodes,
        [names[0], names[0], names[1], names[1], names[2], names[2]]
    );
    // Peers on one node use shared memory, the others TCP on the node's address.
    let addr = table["ranks"][2]["data_addr"].as_str().expect("an address");
    assert!(
        addr.starts_with("shm:") && addr.contains(&format!("tcp:{}:", cluster.nodes[1].addr)),
        "{addr}"
    );
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);

    // The collectives of the self-test too.
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &["-n", "5", "--", "selftest", "collectives"],
    );
    let mut all = vec!["run"];
    all.extend(strs(&args));
    let out = sandbox.mpicr(&all);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);

    let ours: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    drop(cluster);
    let present = netns::our_namespaces();
    assert!(
        ours.iter().all(|n| !present.contains(n)),
        "namespaces left: {present:?}"
    );
}

/// The TCP port `pid` listens on (from /proc: its socket inodes in the listening sockets).
fn listening_port(pid: u32) -> u16 {
    let start = Instant::now();
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter_map(|l| {
                        l.to_string_lossy()
                            .strip_prefix("socket:[")
                            .map(|s| s.trim_end_matches(']').to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().expect("a port");
                return u16::from_str_radix(port, 16).expect("a hex port");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the coordinator never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_wrong_secret_on_the_control_port_is_refused_and_logged_while_the_job_runs_on() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "3", "--", "ckpt-ring", "250"]));
    let name = format!("secret-{}", cluster.nodes[0].name);
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &[
            "--storage",
            &storage,
            "--crs",
            "self",
            "-n",
            "3",
            "--",
            "ckpt-ring",
            "250",
            "20",
        ],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    running_table(&sandbox, &name, 0, 0);
    let port = listening_port(job.pid());
    // On the nodes' network, where an intruder would be: the coordinator's port, with a
    // proof made from a wrong secret.
    let answer = wrong_proof(
        &cluster.gateway,
        port,
        &name,
        &cluster.nodes[1].name,
        wire::HelloRole::Relay,
    );
    assert!(
        answer.contains("did not prove that it knows the job's secret"),
        "{answer}"
    );
    let answer = ask(&cluster.gateway, port, b"GET / HTTP/1.0\r\n\r\n");
    assert!(!answer.is_empty(), "garbage gets an error too");
    // A daemon's store service (daemon-to-daemon copies) refuses the same.
    let store_port = listening_port(cluster.daemon_pid(2) as u32);
    let answer = wrong_proof(
        &cluster.nodes[1].addr,
        store_port,
        &name,
        &cluster.nodes[0].name,
        wire::HelloRole::Store,
    );
    assert!(
        answer.contains("did not prove that it knows the job's secret"),
        "{answer}"
    );
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .matches("refused a control connection from")
            .count(),
        2,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches("refused a store connection from")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
}

/// Connects to `host:port` as `node` of `job`, answers the challenge with a proof made from a
/// wrong secret, and returns the ERROR message's text (or what came). The accepting side's own
/// proof does not verify either: the intruder learns nothing it could use.
fn wrong_proof(host: &str, port: u16, job: &str, node: &str, role: wire::HelloRole) -> String {
    use wire::stream::{read_message, write_message};
    let stream = TcpStream::connect((host, port)).expect("the port answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("a timeout");
    let hello = wire::NodeHello {
        job: job.to_owned(),
        node: node.to_owned(),
        role,
        nonce: "5a".repeat(32),
    };
    write_message(&mut &stream, &wire::Message::NodeHello(hello.clone())).expect("sent");
    let challenge = match read_message(&mut &stream) {
        Ok(wire::Message::NodeChallenge(c)) => c,
        other => return format!("{other:?}"),
    };
    assert!(!wire::auth::verify(
        "0".repeat(64).as_str(),
        wire::auth::Side::Accepting,
        &hello,
        &challenge.nonce,
        &challenge.proof
    ));
    let proof = wire::auth::proof(
        &"0".repeat(64),
        wire::auth::Side::Connecting,
        &hello,
        &challenge.nonce,
    );
    write_message(
        &mut &stream,
        &wire::Message::NodeProof(wire::NodeProof { proof }),
    )
    .expect("sent");
    match read_message(&mut &stream) {
        Ok(wire::Message::Error(text)) => text,
        other => format!("{other:?}"),
    }
}

/// Sends `bytes` to the control port and returns the ERROR message's text (or what came).
fn ask(host: &str, port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect((host, port)).expect("the control port answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("a timeout");
    stream.write_all(bytes).expect("sent");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    match wire::decode_frame(&reply) {
        Ok(Some(frame)) => match wire::Message::decode(frame.header.command, frame.payload) {
            Ok(wire::Message::Error(text)) => text,
            other => format!("{other:?}"),
        },
        _ => String::from_utf8_lossy(&reply).into_owned(),
    }
}

/// Runs ckpt-ring on 6 ranks over 3 nodes with checkpoints every 300 ms and 2 restarts,
/// hurts it with `inject` once a snapshot exists, and checks the uninterrupted result.
fn recovers(name_prefix: &str, inject: impl FnOnce(&Cluster, &Sandbox, &str)) -> String {
    recovers_on(3, name_prefix, &[], |c, s, n| {
        inject(c, s, n);
    })
}

/// The store of node `k` (1-based) under `--storage SANDBOX/store-{node}`.
fn node_store(sandbox: &Sandbox, cluster: &Cluster, k: usize) -> std::path::PathBuf {
    sandbox
        .dir()
        .join(format!("store-{}", cluster.nodes[k - 1].name))
}

/// [`recovers`] on `k` nodes with more options of `mpicr run` (`extra`).
fn recovers_on(
    k: usize,
    name_prefix: &str,
    extra: &[&str],
    inject: impl FnOnce(&Cluster, &Sandbox, &str),
) -> String {
    recovers_running(
        k,
        name_prefix,
        extra,
        (&["ckpt-ring", "200"], &["ckpt-ring", "200", "15"]),
        inject,
    )
}

/// [`recovers_on`] with another program: `program.0` runs uninterrupted for the expected
/// result, `program.1` is the job that is hurt.
fn recovers_running(
    k: usize,
    name_prefix: &str,
    extra: &[&str],
    program: (&[&str], &[&str]),
    inject: impl FnOnce(&Cluster, &Sandbox, &str),
) -> String {
    let Some((_guard, cluster, sandbox)) = netns::setup(k) else {
        return String::new();
    };
    let mut reference = vec!["run", "-n", "6", "--"];
    reference.extend_from_slice(program.0);
    let expected = result_line(&sandbox.mpicr(&reference));
    let name = format!("{name_prefix}-{}", cluster.nodes[0].name);
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let mut rest: Vec<&str> = extra
        .iter()
        .map(|a| if *a == "STORAGE" { storage.as_str() } else { a })
        .collect();
    // Node-store jobs that name no checkpointer keep the `self` one they were written for.
    if extra.contains(&"--storage") && !extra.contains(&"--crs") {
        rest.extend(["--crs", "self"]);
    }
    rest.extend([
        "-n",
        "6",
        "--checkpoint-every",
        "300ms",
        "--max-restarts",
        "2",
        "--",
    ]);
    rest.extend_from_slice(program.1);
    let args = node_args(sandbox.dir(), &cluster, &rest);
    let job = sandbox.start_job(&name, &strs(&args));
    running_table(&sandbox, &name, 0, 0);
    wait_for_snapshots(&sandbox, &name, 1);
    inject(&cluster, &sandbox, &name);
    // While the recovered job runs on, `mpicr status --json` shows the recovery and where
    // the ranks run now.
    let start = Instant::now();
    let (recovery, placement) = loop {
        let out = sandbox.mpicr(&["status", &name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && let Some(last) = v["recoveries"].as_array().and_then(|r| r.last())
            && last["recovered_ms"].is_u64()
        {
            let placement: Vec<String> = v["ranks"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|e| e["node"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            break (last.clone(), placement);
        }
        // A lost node's launcher may take the daemons' start timeout (30 s) to give up.
        if start.elapsed() > Duration::from_secs(180) {
            let out = job.kill();
            panic!(
                "no recovery in the status; the job said:\n{}{}",
                out.stdout, out.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        recovery["snapshot"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{name}."))),
        "{recovery}"
    );
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("recovering job {name} from snapshot")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ms after the failure"),
        "{}",
        out.stderr
    );
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    // The placement, by node number (1-based), after the recovery.
    let numbers = placement
        .iter()
        .map(|node| names.iter().position(|n| n == node).map_or(0, |i| i + 1))
        .collect::<Vec<_>>();
    format!(
        "{}\nplacement after the recovery: {numbers:?}\n",
        out.stderr
    )
}

/// The manifest of job `name`'s newest snapshot.
fn newest_manifest(sandbox: &Sandbox, name: &str) -> store::Manifest {
    let store = store::Store::open(Some(&sandbox.snapshots())).expect("the snapshot directory");
    store
        .latest(name)
        .expect("readable snapshots")
        .expect("a snapshot")
        .manifest()
        .clone()
}

/// Every rank of the newest snapshot of `name` has its part on its own node and on the next
/// node (`--mirror 1`), in node stores and not in the snapshot directory.
fn assert_mirrored(cluster: &Cluster, sandbox: &Sandbox, name: &str) {
    let manifest = newest_manifest(sandbox, name);
    let dir = sandbox
        .snapshots()
        .join(name)
        .join(manifest.epoch.to_string());
    for part in &manifest.parts {
        let home = &manifest.placement[part.rank as usize].1;
        assert_eq!(part.nodes.len(), 2, "{part:?}");
        assert_eq!(&part.nodes[0], home, "{part:?}");
        assert_ne!(part.nodes[0], part.nodes[1], "{part:?}");
        assert!(
            !dir.join(&part.file).exists(),
            "a part in the snapshot directory"
        );
        for node in &part.nodes {
            let k = cluster
                .nodes
                .iter()
                .position(|n| &n.name == node)
                .expect("a node")
                + 1;
            let copy = node_store(sandbox, cluster, k)
                .join(name)
                .join(manifest.epoch.to_string())
                .join(&part.file);
            // A newer snapshot's --keep may have removed it since; then the manifest is gone too.
            assert!(
                copy.exists() || !dir.exists(),
                "no copy of rank {} on node {node}",
                part.rank
            );
        }
    }
}

/// Node `k` is lost with its disk: everything in its namespace is killed (`lose`: and the
/// namespace deleted), its store deleted, and so are the directories its daemon had (on a real
/// node they are on the lost disk; here the nodes share this machine's).
fn wipe_node(cluster: &Cluster, sandbox: &Sandbox, k: usize, lose: bool) {
    if lose {
        cluster.lose(k);
    } else {
        for pid in cluster.pids(k) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).expect("a pid"),
                rustix::process::Signal::KILL,
            );
        }
    }
    std::fs::remove_dir_all(node_store(sandbox, cluster, k)).expect("the store is there");
    let node = &cluster.nodes[k - 1].name;
    let runtime = sandbox
        .snapshots()
        .ancestors()
        .nth(3)
        .expect("state/mpicr/snapshots is in the sandbox")
        .join("mpicr");
    for dir in [runtime, std::path::PathBuf::from("/dev/shm")] {
        // The daemon's pid names them: wait until the killed daemon is gone.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(&format!(".{node}.")) || name.contains(&format!("-{node}-")) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[test]
fn a_node_lost_with_its_store_is_recovered_from_the_mirrored_parts() {
    let stderr = recovers_on(
        3,
        "mirror",
        &["--storage", "STORAGE", "--mirror", "1", "--keep", "2"],
        |cluster, sandbox, name| {
            assert_mirrored(cluster, sandbox, name);
            wipe_node(cluster, sandbox, 2, false);
        },
    );
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 failed"), "{stderr}");
        assert!(stderr.contains("from a mirror"), "{stderr}");
        assert!(
            stderr.contains("placement after the recovery: [1, 1, 2, 2, 3, 3]"),
            "{stderr}"
        );
    }
}

#[test]
fn a_node_lost_with_its_store_is_rebuilt_from_its_group_s_parity() {
    let stderr = recovers_on(
        3,
        "parity",
        &["--storage", "STORAGE", "--parity", "2"],
        |cluster, sandbox, name| {
            // Nodes 1 and 2 form a group whose parity is on node 3; node 3's is on node 1.
            let manifest = newest_manifest(sandbox, name);
            assert!(
                manifest.parts.iter().all(|p| p.nodes.len() == 1),
                "{manifest:?}"
            );
            let parity: Vec<(&String, &String)> = manifest
                .extra
                .iter()
                .filter(|(k, _)| k.starts_with("parity."))
                .collect();
            assert_eq!(parity.len(), 4, "{parity:?}");
            assert!(
                parity.iter().any(|(k, v)| k.as_str() == "parity.parity-0-0"
                    && v.starts_with(&cluster.nodes[2].name)
                    && v.ends_with(" 0,2")),
                "{parity:?}"
            );
            wipe_node(cluster, sandbox, 2, false);
        },
    );
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 failed"), "{stderr}");
        assert!(stderr.contains("from its group's parity"), "{stderr}");
    }
}

#[test]
fn a_lost_node_s_ranks_move_to_a_spare_that_fetches_their_mirrored_parts() {
    let stderr = recovers_on(
        4,
        "spare",
        &["--storage", "STORAGE", "--mirror", "1", "--spares", "1"],
        |cluster, sandbox, _| wipe_node(cluster, sandbox, 2, true),
    );
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 is lost"), "{stderr}");
        assert!(stderr.contains("its ranks move to spare node"), "{stderr}");
        assert!(stderr.contains("from a mirror"), "{stderr}");
        assert!(
            stderr.contains("placement after the recovery: [1, 1, 4, 4, 3, 3]"),
            "{stderr}"
        );
    }
}

#[test]
fn without_spares_a_lost_node_s_ranks_move_to_the_surviving_nodes() {
    let stderr = recovers_on(
        3,
        "shrink",
        &["--storage", "STORAGE", "--mirror", "1"],
        |cluster, sandbox, _| wipe_node(cluster, sandbox, 3, true),
    );
    if !stderr.is_empty() {
        assert!(
            stderr.contains("its ranks move to the surviving nodes"),
            "{stderr}"
        );
        assert!(
            stderr.contains("placement after the recovery: [1, 1, 1, 2, 2, 2]"),
            "{stderr}"
        );
    }
}

#[test]
fn a_failure_during_a_checkpoint_falls_back_to_the_last_committed_snapshot() {
    recovers_on(
        3,
        "midckpt",
        &["--storage", "STORAGE", "--mirror", "1"],
        |_, sandbox, name| {
            // Kill a rank while a checkpoint is being saved and mirrored.
            let start = Instant::now();
            loop {
                let out = sandbox.mpicr(&["status", name, "--json"]);
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
                    && v["checkpoint"]["in_progress"]["phase"] == "saving"
                    && let Some(pid) = v["ranks"][3]["pid"].as_u64()
                {
                    signal(pid as i32, rustix::process::Signal::KILL);
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "never saw a checkpoint"
                );
            }
        },
    );
}

#[test]
fn a_second_failure_during_the_recovery_starts_the_recovery_again() {
    let stderr = recovers("twice", |cluster, sandbox, name| {
        let table = running_table(sandbox, name, 4, 0);
        let pid = table["ranks"][4]["pid"].as_u64().expect("a pid");
        let daemon = cluster.daemon_pid(2);
        signal(pid as i32, rustix::process::Signal::KILL);
        // As soon as the recovery has begun (a new daemon on node 2), kill that daemon too.
        let start = Instant::now();
        loop {
            let now = cluster.daemon_pid(2);
            if now != daemon {
                signal(now, rustix::process::Signal::KILL);
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no recovery");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("(recovery 2 of 2)"), "{stderr}");
    }
}

#[test]
fn a_snapshot_of_a_job_on_several_nodes_restarts_with_hosts_and_fetches_missing_parts() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "6", "--", "ckpt-ring", "120"]));
    let name = format!("again-{}", cluster.nodes[0].name);
    let (out, committed) = mirrored_job(&sandbox, &cluster, &name, &["--keep", "2"], "120", 1);
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    // --keep 2 removed the older snapshots' parts and mirrors from the node stores too.
    assert!(
        !committed.is_empty() && committed.len() <= 2,
        "{committed:?}"
    );
    for k in 1..=3 {
        assert_eq!(
            stored_epochs(&sandbox, &cluster, k, &name),
            committed,
            "node {k}"
        );
    }
    let first = *committed.first().expect("a snapshot");
    // Without the nodes, the parts cannot be reached: refused before anything starts.
    let snapshot = format!("{name}.{first}");
    let out = sandbox.mpicr(&["restart", &snapshot]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("restart it with --hosts"),
        "{}",
        out.stderr
    );
    // Node 1 lost its store since; its ranks' parts come from node 2's mirrors.
    std::fs::remove_dir_all(node_store(&sandbox, &cluster, 1)).expect("the store is there");
    let mut all = vec!["restart".to_owned()];
    all.extend(node_args(sandbox.dir(), &cluster, &[snapshot.as_str()]));
    let out = sandbox.mpicr(&strs(&all));
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert!(out.stderr.contains("from a mirror"), "{}", out.stderr);
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
}

#[test]
fn a_rank_killed_on_a_remote_node_is_recovered_to_the_uninterrupted_result() {
    let stderr = recovers("rank", |_, sandbox, name| {
        let table = running_table(sandbox, name, 4, 0);
        let pid = table["ranks"][4]["pid"].as_u64().expect("a pid");
        signal(pid as i32, rustix::process::Signal::KILL);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("after rank 4 (pid"), "{stderr}");
    }
}

#[test]
fn a_killed_node_daemon_is_detected_and_recovered_to_the_uninterrupted_result() {
    let stderr = recovers("daemon", |cluster, _, _| {
        signal(cluster.daemon_pid(2), rustix::process::Signal::KILL);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 failed"), "{stderr}");
    }
}

#[test]
fn a_stopped_node_daemon_misses_its_heartbeats_and_is_recovered() {
    let stderr = recovers("hang", |cluster, _, _| {
        signal(cluster.daemon_pid(3), rustix::process::Signal::STOP);
    });
    if !stderr.is_empty() {
        assert!(
            stderr.contains("-n3 failed (its daemon missed its heartbeats for 3s)"),
            "{stderr}"
        );
    }
}

#[test]
fn without_restarts_a_failed_node_ends_the_job_with_its_name() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let name = format!("lost-{}", cluster.nodes[0].name);
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &["-n", "3", "--", "ckpt-ring", "400", "20"],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    running_table(&sandbox, &name, 0, 0);
    signal(cluster.daemon_pid(2), rustix::process::Signal::KILL);
    let out = job.finish();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let line = format!(
        "mpicr: node {} (rank 1) failed: its daemon's connection closed; ending the job",
        cluster.nodes[1].name
    );
    assert!(out.stderr.contains(&line), "{}", out.stderr);
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
}

/// Runs ckpt-ring (`steps` steps of 15 ms) on 6 ranks over the 3 nodes as job `name`, with
/// `--storage`, `--mirror 1`, `--crs self`, a checkpoint every 300 ms and `extra` options, waits for
/// `snapshots` committed snapshots and for its end; returns how it ended and the committed
/// epochs.
fn mirrored_job(
    sandbox: &Sandbox,
    cluster: &Cluster,
    name: &str,
    extra: &[&str],
    steps: &str,
    snapshots: usize,
) -> (Out, Vec<u64>) {
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let mut rest = vec!["--storage", &storage, "--mirror", "1", "--crs", "self"];
    rest.extend_from_slice(extra);
    rest.extend([
        "-n",
        "6",
        "--checkpoint-every",
        "300ms",
        "--",
        "ckpt-ring",
        steps,
        "15",
    ]);
    let args = node_args(sandbox.dir(), cluster, &rest);
    let job = sandbox.start_job(name, &strs(&args));
    wait_for_snapshots(sandbox, name, snapshots);
    let out = job.finish();
    let committed = store::Store::open(Some(&sandbox.snapshots()))
        .expect("the snapshot directory")
        .epochs(name)
        .expect("the epochs");
    (out, committed)
}

/// The epochs node `k`'s store holds of job `name`, ascending.
fn stored_epochs(sandbox: &Sandbox, cluster: &Cluster, k: usize, name: &str) -> Vec<u64> {
    let mut epochs: Vec<u64> = std::fs::read_dir(node_store(sandbox, cluster, k).join(name))
        .expect("a node store")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    epochs.sort_unstable();
    epochs
}

#[test]
fn gc_outside_the_job_removes_the_node_copies_and_finishes_on_a_node_that_was_unreachable() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let name = format!("gc-{}", cluster.nodes[0].name);
    let (out, committed) = mirrored_job(&sandbox, &cluster, &name, &[], "200", 2);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let store = store::Store::open(Some(&sandbox.snapshots())).expect("the snapshot directory");
    assert!(committed.len() >= 2, "{committed:?}");
    // Every node holds every committed snapshot (no --keep), so gc has copies to remove. A
    // node may also hold an epoch that was never committed (a checkpoint abandoned as the job
    // ended, should its pruning have missed it): no manifest names it, gc does not touch it.
    let mut uncommitted = Vec::new();
    for k in 1..=3 {
        let held = stored_epochs(&sandbox, &cluster, k, &name);
        assert!(
            committed.iter().all(|e| held.contains(e)),
            "node {k} holds {held:?} of {committed:?}"
        );
        uncommitted.push(
            held.into_iter()
                .filter(|e| !committed.contains(e))
                .collect::<Vec<u64>>(),
        );
    }
    if uncommitted.iter().any(|u| !u.is_empty()) {
        eprintln!("epochs never committed, left in the node stores by the run: {uncommitted:?}");
    }
    let newest = *committed.last().expect("a snapshot");
    // What node k must hold once its copies are removed: the kept snapshot, and what no
    // manifest names.
    let only_kept = |k: usize| {
        let mut kept = vec![newest];
        kept.extend(&uncommitted[k - 1]);
        kept.sort_unstable();
        kept
    };

    // Node 3 cannot be reached: the snapshots are removed here and from nodes 1 and 2, and gc
    // says which copies remain and fails.
    cluster.lose(3);
    let out = sandbox.mpicr(&["gc", "--keep", "1", &name]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let lost = &cluster.nodes[2].name;
    assert!(
        out.stderr
            .contains(&format!("on node {lost} remain: it cannot be reached")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`mpicr gc` tries them again"),
        "{}",
        out.stderr
    );
    assert_eq!(store.epochs(&name).expect("the epochs"), [newest]);
    for k in 1..=2 {
        assert_eq!(
            stored_epochs(&sandbox, &cluster, k, &name),
            only_kept(k),
            "node {k}"
        );
    }
    let held = stored_epochs(&sandbox, &cluster, 3, &name);
    assert!(
        committed.iter().all(|e| held.contains(e)),
        "the unreachable node keeps its copies: {held:?}"
    );

    // The node is back (its namespace again, the same store): the next gc finishes the job.
    let added = std::process::Command::new("ip")
        .args(["netns", "add", lost])
        .status()
        .expect("ip runs");
    assert!(added.success());
    let out = sandbox.mpicr(&["gc", "--keep", "1", &name]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("gc done on the nodes: 3 of 3 cleaned"),
        "{}",
        out.stderr
    );
    for k in 1..=3 {
        assert_eq!(
            stored_epochs(&sandbox, &cluster, k, &name),
            only_kept(k),
            "node {k}"
        );
    }
    let records: Vec<String> = std::fs::read_dir(sandbox.snapshots().join(&name))
        .expect("the job's directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".nodes-"))
        .collect();
    assert!(records.is_empty(), "records left: {records:?}");
    // The kept snapshot's parts and mirrors are all still there.
    assert_mirrored(&cluster, &sandbox, &name);
    // Nothing is left to do: a third gc reaches no node.
    let out = sandbox.mpicr(&["gc", "--keep", "1", &name]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("on the nodes"), "{}", out.stderr);
}

/// Writes a stand-in for `ssh` or `srun` into `DIR/bin` (to be put first on PATH) and returns
/// that directory. It records its arguments (`DIR/<program>-<pid>.argv`, one a line) and the
/// first line of its stdin (`.stdin`), passes stdin on, and runs the command in the node's
/// namespace as the real program would run it on the node: `ssh` hands the words after the
/// host to a shell there as one string (so they must arrive quoted), `srun` runs them as
/// they are. Like both, it ends with the command's status, and with 255 when the node cannot
/// be reached (`ip netns exec` into a missing namespace).
fn fake_launcher(dir: &std::path::Path, program: &str) -> std::path::PathBuf {
    let (options, run) = match program {
        "ssh" => (
            r#"-o) shift 2 ;;
        -T) shift ;;
        -*) echo "fake ssh: unexpected option $1" >&2; exit 2 ;;
        *) node="$1"; shift; break ;;"#,
            r#"ip netns exec "$node" sh -c "$*""#,
        ),
        _ => (
            r#"--nodelist=*) node="${1#--nodelist=}"; shift ;;
        --*) shift ;;
        *) break ;;"#,
            r#"ip netns exec "$node" "$@""#,
        ),
    };
    let log = dir.join(program);
    let script = format!(
        r#"#!/bin/sh
log="{log}-$$"
printf '%s\n' "$@" > "$log.argv"
node=""
while [ $# -gt 0 ]; do
    case "$1" in
        {options}
    esac
done
IFS= read -r line
printf '%s\n' "$line" > "$log.stdin"
{{ printf '%s\n' "$line"; exec cat; }} | {run}
"#,
        log = log.display()
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("a bin directory");
    let path = bin.join(program);
    std::fs::write(&path, script).expect("the stand-in is written");
    let mut perms = std::fs::metadata(&path).expect("it exists").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("it is executable");
    bin
}

/// The calls of the stand-in `program` so far: (arguments, first line of stdin); the logs are
/// removed.
fn launcher_calls(dir: &std::path::Path, program: &str) -> Vec<(Vec<String>, String)> {
    let mut calls = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the sandbox").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file
            .strip_prefix(&format!("{program}-"))
            .and_then(|f| f.strip_suffix(".argv"))
        else {
            continue;
        };
        let argv = std::fs::read_to_string(entry.path()).expect("the arguments");
        let stdin_log = dir.join(format!("{program}-{stem}.stdin"));
        let stdin = std::fs::read_to_string(&stdin_log).unwrap_or_default();
        calls.push((
            argv.lines().map(str::to_owned).collect(),
            stdin.trim_end().to_owned(),
        ));
        let _ = std::fs::remove_file(entry.path());
        let _ = std::fs::remove_file(stdin_log);
    }
    calls
}

/// Runs a mirrored job on 2 nodes with `--launcher LAUNCHER` through the stand-in `program`,
/// then `mpicr gc` through the launcher the snapshots recorded, and checks each call's
/// arguments: `prefix(node)`, then the absolute `mpicr` and its subcommand; the secret on
/// stdin only (in no argument, not in the daemons' environment). The node stores' directory
/// has a blank in its name, which must reach the nodes as one word.
fn launcher_test(launcher: &str, program: &str, prefix: impl Fn(&str) -> Vec<String>) {
    let Some((_guard, cluster, sandbox)) = netns::setup(2) else {
        return;
    };
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "4", "--", "ckpt-ring", "200"]));
    let bin = fake_launcher(sandbox.dir(), program);
    let mut path = bin.into_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = [("PATH", path)];
    let name = format!("{program}-{}", cluster.nodes[0].name);
    let storage = sandbox.dir().join("store {node}").display().to_string();
    let hostfile = sandbox.dir().join("hosts");
    cluster.hostfile(&hostfile);
    let hostfile = hostfile.display().to_string();
    let job = sandbox.start_env(
        &[
            "run",
            "--job-name",
            &name,
            "--hostfile",
            &hostfile,
            "--launcher",
            launcher,
            "--storage",
            &storage,
            "--mirror",
            "1",
            "--crs",
            "self",
            "-n",
            "4",
            "--checkpoint-every",
            "300ms",
            "--",
            "ckpt-ring",
            "200",
            "15",
        ],
        &env,
    );
    sandbox.wait_for_job(&name);
    let daemons = [cluster.daemon_pid(1), cluster.daemon_pid(2)];
    wait_for_snapshots(&sandbox, &name, 2);
    let calls = launcher_calls(sandbox.dir(), program);
    let secret = calls.first().map(|c| c.1.clone()).unwrap_or_default();
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "the secret on stdin: {calls:?}"
    );
    for pid in daemons {
        for what in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&secret),
                "the secret is in the {what} of daemon {pid}"
            );
        }
    }
    let out = job.finish();
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    let mpicr = std::fs::canonicalize(harness::bin("mpicr"))
        .expect("mpicr")
        .display()
        .to_string();
    // Each call: the launcher's words for one node, then `mpicr SUBCOMMAND … --job NAME …`,
    // and never the secret; one call per node.
    let check = |calls: &[(Vec<String>, String)], subcommand: &str| {
        let mut nodes: Vec<String> = Vec::new();
        for (argv, stdin) in calls {
            let node = cluster
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .find(|n| argv[..prefix(n).len().min(argv.len())] == prefix(n)[..])
                .unwrap_or_else(|| panic!("no node's prefix: {argv:?}"));
            let rest = &argv[prefix(&node).len()..];
            assert_eq!(rest[0], mpicr, "{argv:?}");
            assert_eq!(rest[1], subcommand, "{argv:?}");
            assert!(
                argv.windows(2).any(|w| w[0] == "--job" && w[1] == name),
                "{argv:?}"
            );
            assert!(argv.iter().all(|a| !a.contains(&secret)), "{argv:?}");
            if subcommand == "node" {
                assert_eq!(stdin, &secret, "every daemon got the secret: {argv:?}");
                assert!(
                    argv.windows(2).any(|w| w[0] == "--node" && w[1] == node),
                    "the daemon is told its node: {argv:?}"
                );
            }
            nodes.push(node);
        }
        nodes.sort();
        let mut all: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
        all.sort();
        assert_eq!(nodes, all, "one call per node: {calls:?}");
    };
    check(&calls, "node");

    // gc reaches the nodes through the launcher the snapshots recorded.
    let committed = store::Store::open(Some(&sandbox.snapshots()))
        .expect("the snapshot directory")
        .epochs(&name)
        .expect("the epochs");
    assert!(committed.len() >= 2, "{committed:?}");
    let out = sandbox
        .start_env(&["gc", "--keep", "1", &name], &env)
        .finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    check(&launcher_calls(sandbox.dir(), program), "node-prune");
    let newest = *committed.last().expect("a snapshot");
    for k in 1..=2 {
        let store = sandbox
            .dir()
            .join(format!("store {}", cluster.nodes[k - 1].name))
            .join(&name);
        let mut held: Vec<u64> = std::fs::read_dir(&store)
            .expect("a node store")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        held.sort_unstable();
        assert_eq!(held, [newest], "node {k}");
    }
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
}

#[test]
fn the_ssh_launcher_runs_daemons_and_gc_in_batch_mode_with_the_secret_on_stdin_only() {
    launcher_test("ssh", "ssh", |node| {
        ["-o", "BatchMode=yes", "-T", node]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
}

#[test]
fn the_slurm_launcher_runs_daemons_and_gc_with_srun_and_the_secret_on_stdin_only() {
    launcher_test("slurm", "srun", |node| {
        vec![
            "--nodes=1".to_owned(),
            "--ntasks=1".to_owned(),
            format!("--nodelist={node}"),
            "--input=all".to_owned(),
        ]
    });
}

/// `mpicr-image-ring` (no checkpoint code: the `image` checkpointer's program), uninterrupted
/// and slowed down for a job that is hurt.
const IMAGE_RING: (&[&str], &[&str]) = (&["image-ring", "300"], &["image-ring", "300", "10"]);

/// Every committed snapshot of `name` keeps its ranks' process images in the node stores
/// that hold their parts (the first `holders` of each), not in the snapshot directory: on each
/// holder the image beside the part and every link of its chain the rank's own node has
/// (`rank-R.base-E.image`), of the same size. Returns how many chain links the snapshots hold
/// in all.
fn assert_images_held(cluster: &Cluster, sandbox: &Sandbox, name: &str, holders: usize) -> usize {
    let store = store::Store::open(Some(&sandbox.snapshots())).expect("the snapshot directory");
    let mut links = 0;
    for epoch in store.epochs(name).expect("the epochs") {
        let snapshot = store
            .resolve(&format!("{name}.{epoch}"))
            .expect("a committed snapshot");
        let manifest = snapshot.manifest();
        for part in &manifest.parts {
            assert_eq!(part.checkpointer, "image", "{part:?}");
            let image = format!("rank-{}.image", part.rank);
            assert!(
                !snapshot.path().join(&image).exists(),
                "an image in the snapshot directory"
            );
            let dir_on = |node: &String| {
                let k = cluster
                    .nodes
                    .iter()
                    .position(|n| &n.name == node)
                    .expect("a node")
                    + 1;
                node_store(sandbox, cluster, k)
                    .join(name)
                    .join(epoch.to_string())
            };
            let home = dir_on(&part.nodes[0]);
            let chain: Vec<String> = std::fs::read_dir(&home)
                .expect("the epoch on the rank's node")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| f.starts_with(&format!("rank-{}.base-", part.rank)))
                .collect();
            links += chain.len();
            for node in part.nodes.iter().take(holders) {
                let dir = dir_on(node);
                for file in std::iter::once(&part.file).chain([&image]).chain(&chain) {
                    let size =
                        |d: &std::path::Path| std::fs::metadata(d.join(file)).map(|m| m.len());
                    assert_eq!(
                        size(&dir).ok(),
                        size(&home).ok(),
                        "{file} of epoch {epoch} on node {node}"
                    );
                    assert!(size(&dir).is_ok(), "{file} of epoch {epoch} on node {node}");
                }
            }
        }
    }
    links
}

/// [`recovers_running`] on `nodes` nodes of [`IMAGE_RING`] with `--crs image --full-every 3
/// --storage` and `redundancy`: once `snapshots` snapshots exist, checks that the node stores
/// hold the images (with some incremental chain when `chains`) and hurts the job with
/// `inject`.
fn image_recovers(
    nodes: usize,
    name_prefix: &str,
    redundancy: &[&str],
    snapshots: usize,
    chains: bool,
    inject: impl FnOnce(&Cluster, &Sandbox, &str),
) -> String {
    let mut extra = vec![
        "--crs",
        "image",
        "--full-every",
        "3",
        "--storage",
        "STORAGE",
    ];
    extra.extend_from_slice(redundancy);
    recovers_running(
        nodes,
        name_prefix,
        &extra,
        IMAGE_RING,
        |cluster, sandbox, name| {
            wait_for_snapshots(sandbox, name, snapshots);
            let links = assert_images_held(cluster, sandbox, name, usize::MAX);
            assert!(!chains || links > 0, "no incremental image");
            inject(cluster, sandbox, name);
        },
    )
}

/// [`image_recovers`] with `redundancy` after node 2 is lost with its store: the recovery
/// must say it got the node's images `from`.
fn image_node_lost(name_prefix: &str, redundancy: &[&str], from: &str) {
    let stderr = image_recovers(3, name_prefix, redundancy, 2, true, |c, s, _| {
        wipe_node(c, s, 2, false);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 failed"), "{stderr}");
        assert!(stderr.contains(from), "{stderr}");
    }
}

#[test]
fn an_image_job_s_lost_node_is_recovered_from_its_mirrored_images_and_chains() {
    image_node_lost("imgmirror", &["--mirror", "1"], "from a mirror");
}

#[test]
fn an_image_job_s_lost_node_is_rebuilt_from_its_group_s_parity() {
    image_node_lost("imgparity", &["--parity", "2"], "from its group's parity");
}

/// Node 2 of an image job is lost with its namespace: its ranks move to the spare node 4,
/// which fetches their parts, images and chains from the mirrors.
#[test]
fn an_image_job_s_lost_node_s_ranks_move_to_a_spare_that_fetches_their_images() {
    let redundancy = ["--mirror", "1", "--spares", "1"];
    let stderr = image_recovers(4, "imgspare", &redundancy, 2, true, |c, s, _| {
        wipe_node(c, s, 2, true);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 is lost"), "{stderr}");
        assert!(stderr.contains("its ranks move to spare node"), "{stderr}");
        assert!(stderr.contains("from a mirror"), "{stderr}");
    }
}

#[test]
fn a_killed_rank_of_an_image_job_with_node_stores_and_incremental_images_is_recovered() {
    let stderr = image_recovers(3, "imgrank", &[], 3, true, |_, sandbox, name| {
        let table = running_table(sandbox, name, 4, 0);
        let pid = table["ranks"][4]["pid"].as_u64().expect("a pid");
        signal(pid as i32, rustix::process::Signal::KILL);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("after rank 4 (pid"), "{stderr}");
    }
}

#[test]
fn an_image_snapshot_in_node_stores_restarts_with_hosts_and_gc_removes_its_images() {
    let Some((_guard, cluster, sandbox)) = setup() else {
        return;
    };
    let mut reference = vec!["run", "-n", "6", "--"];
    reference.extend_from_slice(IMAGE_RING.0);
    let expected = result_line(&sandbox.mpicr(&reference));
    let name = format!("imgagain-{}", cluster.nodes[0].name);
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let mut rest = vec![
        "--crs",
        "image",
        "--full-every",
        "3",
        "--storage",
        &storage,
        "--mirror",
        "1",
        "-n",
        "6",
        "--checkpoint-every",
        "300ms",
        "--",
    ];
    rest.extend_from_slice(IMAGE_RING.1);
    let job = sandbox.start_job(&name, &strs(&node_args(sandbox.dir(), &cluster, &rest)));
    wait_for_snapshots(&sandbox, &name, 2);
    // A rank killed without --max-restarts ends the job (which cleans up after itself).
    harness::snap::kill_rank(&sandbox, &name, 4, 0);
    let out = job.finish();
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let store = store::Store::open(Some(&sandbox.snapshots())).expect("the snapshot directory");
    let committed = store.epochs(&name).expect("the epochs");
    assert_images_held(&cluster, &sandbox, &name, usize::MAX);
    let newest = *committed.last().expect("a snapshot");
    let snapshot = format!("{name}.{newest}");
    // Node 1 lost its store: its ranks' parts, images and chains come from node 2's mirrors.
    std::fs::remove_dir_all(node_store(&sandbox, &cluster, 1)).expect("the store is there");
    let mut all = vec!["restart".to_owned()];
    all.extend(node_args(sandbox.dir(), &cluster, &[snapshot.as_str()]));
    let out = sandbox.mpicr(&strs(&all));
    assert_eq!(result_line(&out), expected, "{}", out.stderr);
    assert!(out.stderr.contains("from a mirror"), "{}", out.stderr);
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
    assert!(committed.len() >= 2, "{committed:?}");
    // gc outside the job removes the older snapshots' parts and images from every node.
    let out = sandbox.mpicr(&["gc", "--keep", "1", &name]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for k in 1..=3 {
        let held = stored_epochs(&sandbox, &cluster, k, &name);
        assert!(
            committed.iter().all(|e| *e == newest || !held.contains(e)),
            "node {k} holds {held:?}, only {newest} of {committed:?} was kept"
        );
    }
    assert_eq!(store.epochs(&name).expect("the epochs"), [newest]);
    // The kept snapshot's images are where its ranks restart (node 1's fetched back; the
    // mirrors node 1 held went with its store).
    assert_images_held(&cluster, &sandbox, &name, 1);
}
