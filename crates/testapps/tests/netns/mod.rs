//! Several nodes on this machine for the tests: K network namespaces `mpicr-t<pid><seq>-n<k>`,
//! each with `lo` up and one end of a veth pair, whose other end is in a bridge in the root
//! namespace. The addresses come from a private /24 (10.213.X.0/24, X chosen so that no
//! interface of the machine uses it yet): the bridge gets .1 (the coordinator listens there),
//! node k gets .(k+1). Traffic only goes to loopback or to these namespaces.
//!
//! Dropping a [`Cluster`] kills every process in its namespaces and removes the namespaces,
//! the veths and the bridge, also when the test failed. A new cluster first removes what
//! clusters of dead test processes left behind (their owner's pid is in the names).
//!
//! Needs root (`ip netns add`); [`Cluster::available`] tells whether the tests can run.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::harness::Sandbox;

/// Held while a test uses its cluster: one cluster at a time on this machine, also across the
/// processes of a test runner that runs each test in its own (nextest), so that each test gets
/// the machine's cores (heartbeats are timed). The lock is released when the holder ends.
#[derive(Debug)]
pub struct OneAtATime(std::fs::File);

impl OneAtATime {
    pub fn take() -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(concat!(
                env!("CARGO_TARGET_TMPDIR"),
                "/mpicr-netns-tests.lock"
            ))
            .expect("the lock file opens");
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .expect("the lock is taken");
        Self(file)
    }
}

/// How long a node's daemon may take to start: generous, as CI runs every test at once on two
/// cores (the harness's `LIMIT`; this module is also used with another crate's sandbox).
const DAEMON_WAIT: std::time::Duration = std::time::Duration::from_secs(240);

/// Prefix of the namespaces' names; interfaces start with [`IF_PREFIX`].
const NS_PREFIX: &str = "mpicr-t";
/// Prefix of the interfaces in the root namespace (interface names are at most 15 bytes).
const IF_PREFIX: &str = "mt";

/// One node: its namespace and address.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub addr: String,
}

/// K namespaces joined by a bridge.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// The bridge's address in the root namespace, where the coordinator listens.
    pub gateway: String,
    bridge: String,
    veths: Vec<String>,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid at the start of `digits_and_more` (our names are `<pid><letter>…`).
fn owner(rest: &str) -> Option<u32> {
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Kills every process in namespace `ns` and removes it.
fn remove_namespace(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    // The processes must be gone before the namespace can really go away.
    for _ in 0..100 {
        if ip(&["netns", "pids", ns]).is_ok_and(|p| p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = ip(&["netns", "delete", ns]);
}

/// Names of our namespaces now present.
pub fn our_namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Names of our interfaces in the root namespace.
fn our_links() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| {
            n.strip_prefix(IF_PREFIX)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

/// Removes namespaces and interfaces whose owning test process is dead.
fn remove_leftovers() {
    for ns in our_namespaces() {
        if owner(&ns[NS_PREFIX.len()..]).is_some_and(|pid| !alive(pid)) {
            remove_namespace(&ns);
        }
    }
    for link in our_links() {
        if owner(&link[IF_PREFIX.len()..]).is_some_and(|pid| !alive(pid)) {
            let _ = ip(&["link", "delete", &link]);
        }
    }
}

impl Cluster {
    /// Whether namespaces can be made here (root, `ip` present).
    pub fn available() -> bool {
        rustix::process::geteuid().is_root() && ip(&["netns", "list"]).is_ok()
    }

    /// Makes `k` nodes.
    pub fn new(k: usize) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        remove_leftovers();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{pid}{}", (b'a' + (seq % 26) as u8) as char);
        let subnet = free_subnet(pid + seq);
        let mut cluster = Self {
            nodes: Vec::new(),
            gateway: format!("{subnet}.1"),
            bridge: format!("{IF_PREFIX}{tag}br"),
            veths: Vec::new(),
        };
        // From here on, a failure drops `cluster`, which removes what was made.
        let br = cluster.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"]).expect("a bridge");
        ip(&[
            "addr",
            "add",
            &format!("{}/24", cluster.gateway),
            "dev",
            &br,
        ])
        .expect("an address");
        // A bridge without an address of its own takes its ports' lowest MAC, so losing a
        // node (its veth) could change the gateway's MAC under the other nodes' ARP caches.
        let octet = subnet
            .rsplit('.')
            .next()
            .unwrap_or("0")
            .parse::<u8>()
            .unwrap_or(0);
        ip(&[
            "link",
            "set",
            &br,
            "address",
            &format!("02:6d:70:63:72:{octet:02x}"),
        ])
        .expect("the bridge's address");
        ip(&["link", "set", &br, "up"]).expect("the bridge up");
        for n in 1..=k {
            let ns = format!("{NS_PREFIX}{tag}-n{n}");
            let veth = format!("{IF_PREFIX}{tag}v{n}");
            let addr = format!("{subnet}.{}", n + 1);
            ip(&["netns", "add", &ns]).expect("a namespace");
            cluster.nodes.push(Node {
                name: ns.clone(),
                addr: addr.clone(),
            });
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])
            .expect("a veth pair");
            cluster.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &br, "up"]).expect("the veth in the bridge");
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])
            .expect("the node's address");
            ip(&["-n", &ns, "link", "set", "eth0", "up"]).expect("eth0 up");
            ip(&["-n", &ns, "link", "set", "lo", "up"]).expect("lo up");
        }
        cluster
    }

    /// A host file for the nodes (with their addresses), written to `path`.
    pub fn hostfile(&self, path: &std::path::Path) {
        let text: String = self
            .nodes
            .iter()
            .map(|n| format!("{} addr={}\n", n.name, n.addr))
            .collect();
        std::fs::write(path, text).expect("the host file is written");
    }

    /// The pids of the processes in node `k`'s namespace (1-based).
    /// Node `k` (1-based) is lost: everything in its namespace is killed and the namespace
    /// with its interfaces is deleted, so that its launcher can no longer reach it.
    /// The namespace's name goes first, so that its launcher fails from that moment on (as
    /// `ssh` to a dead host would), then its processes.
    pub fn lose(&self, k: usize) {
        let ns = &self.nodes[k - 1].name;
        let pids = self.pids(k);
        let _ = ip(&["netns", "delete", ns]);
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }

    /// The node daemon (`mpicr node`) in node `k`'s namespace (1-based), once it runs.
    pub fn daemon_pid(&self, k: usize) -> i32 {
        let start = std::time::Instant::now();
        loop {
            for pid in self.pids(k) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                if args.get(1) == Some(&&b"node"[..]) {
                    return pid;
                }
            }
            assert!(start.elapsed() < DAEMON_WAIT, "no daemon in node {k}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn pids(&self, k: usize) -> Vec<i32> {
        ip(&["netns", "pids", &self.nodes[k - 1].name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// A 10.213.X prefix no interface of this machine uses.
fn free_subnet(seed: u32) -> String {
    let used = ip(&["-o", "addr", "show"]).unwrap_or_default();
    for i in 0..250 {
        let x = (seed + i) % 250 + 1;
        let prefix = format!("10.213.{x}");
        if !used.contains(&format!("{prefix}.")) {
            return prefix;
        }
    }
    panic!("no free 10.213.X.0/24 subnet");
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            remove_namespace(&node.name);
        }
        for veth in &self.veths {
            // Usually gone with its peer's namespace.
            let _ = ip(&["link", "delete", veth]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }
}

/// A cluster of `k` nodes (held alone) and a sandbox, or `None` (the test is skipped, with a
/// line on stderr) where namespaces cannot be made.
pub fn setup(k: usize) -> Option<(OneAtATime, Cluster, Sandbox)> {
    if !Cluster::available() {
        eprintln!("skipped: network namespaces need root and `ip`");
        return None;
    }
    let guard = OneAtATime::take();
    let cluster = Cluster::new(k);
    let sandbox = Sandbox::new();
    Some((guard, cluster, sandbox))
}

/// The launcher of the cluster's node daemons: each starts inside its namespace.
pub const LAUNCHER: &str = "ip netns exec {node}";

/// `--hostfile F --launcher 'ip netns exec {node}' --heartbeat 5s` (F written for job
/// `name`), then `rest`: the arguments of `mpicr run` on the cluster's nodes.
pub fn job_args(sandbox: &Sandbox, cluster: &Cluster, name: &str, rest: &[&str]) -> Vec<String> {
    job_args_with(sandbox, cluster, name, LAUNCHER, rest)
}

/// [`job_args`] with the node daemons started by `launcher`.
pub fn job_args_with(
    sandbox: &Sandbox,
    cluster: &Cluster,
    name: &str,
    launcher: &str,
    rest: &[&str],
) -> Vec<String> {
    let hostfile = sandbox.dir().join(format!("hosts-{name}"));
    cluster.hostfile(&hostfile);
    let mut args: Vec<String> = [
        "--hostfile",
        &hostfile.display().to_string(),
        "--launcher",
        launcher,
        "--heartbeat",
        "5s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    args
}

/// Sends `signal` to `pid` (a daemon stopped and continued by a test).
pub fn signal(pid: i32, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).expect("a pid"), signal)
        .expect("the process can be signalled");
}
