//! Jobs on several nodes: three network namespaces on this machine (`netns`), one node daemon
//! in each started with `--launcher 'ip netns exec {node}'`, ranks talking shared memory
//! within a node and TCP between nodes. Each run must give the one-node result, also after a
//! rank or a daemon was killed; a wrong secret on the control port is refused while the job
//! runs on; nothing is left behind. The tests are skipped (with a line on stderr) where
//! namespaces cannot be made (not root).

mod harness;
mod netns;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{Out, Sandbox, marked};
use netns::Cluster;

/// The result line of a finished ckpt-ring job.
fn result_line(out: &Out) -> String {
    assert_eq!(
        out.code,
        Some(0),
        "the job failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("no result in {}\n{}", out.stdout, out.stderr))
        .to_owned()
}

/// A cluster of 3 nodes and a sandbox, or `None` (test skipped) without root.
fn setup() -> Option<(netns::OneAtATime, Cluster, Sandbox)> {
    if !Cluster::available() {
        eprintln!("skipped: network namespaces need root and `ip`");
        return None;
    }
    let guard = netns::OneAtATime::take();
    let cluster = Cluster::new(3);
    let sandbox = Sandbox::new();
    Some((guard, cluster, sandbox))
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

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
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

/// Waits until job `name` has committed at least `epochs` snapshots.
fn wait_for_snapshots(sandbox: &Sandbox, name: &str, epochs: usize) {
    let start = Instant::now();
    loop {
        let count = std::fs::read_dir(sandbox.snapshots().join(name))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
                    .count()
            })
            .unwrap_or(0);
        if count >= epochs {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {name} never committed {epochs} snapshots"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The node daemon in node `k`'s namespace.
fn daemon_pid(cluster: &Cluster, k: usize) -> i32 {
    let start = Instant::now();
    loop {
        for pid in cluster.pids(k) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if args.get(1) == Some(&&b"node"[..]) {
                return pid;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no daemon in node {k}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: i32, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).expect("a pid"), signal)
        .expect("the process can be signalled");
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

/// Processes still alive with the sandbox's marker, a moment after the job ended.
fn leftovers(sandbox: &Sandbox) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let left = marked(sandbox.marker());
        if left.is_empty() || start.elapsed() > Duration::from_secs(5) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "3", "--", "ckpt-ring", "60"]));
    let name = format!("secret-{}", cluster.nodes[0].name);
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &["-n", "3", "--", "ckpt-ring", "60", "20"],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    running_table(&sandbox, &name, 0, 0);
    let port = listening_port(job.pid());
    let hello = wire::Message::NodeHello(wire::NodeHello {
        job: name.clone(),
        node: cluster.nodes[1].name.clone(),
        role: wire::HelloRole::Relay,
        secret: "0".repeat(64),
    });
    // On the nodes' network, where an intruder would be.
    let answer = ask(&cluster.gateway, port, &hello.encode());
    assert!(
        answer.contains("did not prove that it knows the job's secret"),
        "{answer}"
    );
    let answer = ask(&cluster.gateway, port, b"GET / HTTP/1.0\r\n\r\n");
    assert!(!answer.is_empty(), "garbage gets an error too");
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
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
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
    let Some((_guard, cluster, sandbox)) = setup() else {
        return String::new();
    };
    let expected = result_line(&sandbox.mpicr(&["run", "-n", "6", "--", "ckpt-ring", "200"]));
    let name = format!("{name_prefix}-{}", cluster.nodes[0].name);
    let args = node_args(
        sandbox.dir(),
        &cluster,
        &[
            "-n",
            "6",
            "--checkpoint-every",
            "300ms",
            "--max-restarts",
            "2",
            "--",
            "ckpt-ring",
            "200",
            "15",
        ],
    );
    let job = sandbox.start_job(&name, &strs(&args));
    running_table(&sandbox, &name, 0, 0);
    wait_for_snapshots(&sandbox, &name, 1);
    inject(&cluster, &sandbox, &name);
    // While the recovered job runs on, `mpicr status --json` shows the recovery.
    let start = Instant::now();
    let recovery = loop {
        let out = sandbox.mpicr(&["status", &name, "--json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && v["recoveries"][0]["recovered_ms"].is_u64()
        {
            break v["recoveries"][0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no recovery in the status: {}",
            out.stdout
        );
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
    out.stderr
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
        signal(daemon_pid(cluster, 2), rustix::process::Signal::KILL);
    });
    if !stderr.is_empty() {
        assert!(stderr.contains("-n2 failed"), "{stderr}");
    }
}

#[test]
fn a_stopped_node_daemon_misses_its_heartbeats_and_is_recovered() {
    let stderr = recovers("hang", |cluster, _, _| {
        signal(daemon_pid(cluster, 3), rustix::process::Signal::STOP);
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
    signal(daemon_pid(&cluster, 2), rustix::process::Signal::KILL);
    let out = job.finish();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let line = format!(
        "mpicr: node {} (rank 1) failed: its daemon's connection closed; ending the job",
        cluster.nodes[1].name
    );
    assert!(out.stderr.contains(&line), "{}", out.stderr);
    assert_nothing_left(&sandbox, leftovers(&sandbox), &name);
}
