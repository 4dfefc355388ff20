//! The nodes of a job on several machines: the host list (`--hosts`, `--hostfile`), the
//! placement of ranks on them, how a node daemon is started there (`--launcher`), and which
//! address the coordinator listens on.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};
use std::path::Path;

use thiserror::Error;

/// One line of a host file: `NAME [slots=N] [addr=IP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The node's name: what the launcher is given, and `MPICR_NODE` of its ranks.
    pub name: String,
    /// How many ranks it takes at most; `None`: an equal share of what the others leave.
    pub slots: Option<u32>,
    /// The address its ranks bind and peers reach; `None`: the daemon's own address towards
    /// the coordinator.
    pub addr: Option<IpAddr>,
}

/// Why a host list is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HostsError {
    #[error("{file}:{line}: {reason}")]
    Line {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("cannot read the host file {file}: {reason}")]
    Read { file: String, reason: String },
    #[error("the host list is empty")]
    Empty,
    #[error("host `{0}` is listed twice")]
    Duplicate(String),
    #[error("`{0}` is not a usable node name (letters, digits, `.`, `_`, `-`; at most 64)")]
    BadName(String),
    #[error("{ranks} ranks do not fit into the {slots} slots of the host list")]
    TooFewSlots { ranks: u32, slots: u64 },
    #[error("`--launcher` is empty")]
    EmptyLauncher,
}

/// Checks a node name: it becomes part of file names on the node.
fn check_name(name: &str) -> Result<(), HostsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(HostsError::BadName(name.to_owned()))
    }
}

/// `a,b,c`.
pub fn parse_hosts(list: &str) -> Result<Vec<HostSpec>, HostsError> {
    let mut hosts = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        check_name(name)?;
        hosts.push(HostSpec {
            name: name.to_owned(),
            slots: None,
            addr: None,
        });
    }
    finish(hosts)
}

/// Reads a host file.
pub fn read_hostfile(path: &Path) -> Result<Vec<HostSpec>, HostsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| HostsError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse_hostfile(&file, &text)
}

/// Parses host-file text; `file` names it in errors. `#` starts a comment; blank lines are
/// skipped.
pub fn parse_hostfile(file: &str, text: &str) -> Result<Vec<HostSpec>, HostsError> {
    let mut hosts = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let error = |reason: String| HostsError::Line {
            file: file.to_owned(),
            line: index + 1,
            reason,
        };
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        check_name(name).map_err(|e| error(e.to_string()))?;
        let mut host = HostSpec {
            name: name.to_owned(),
            slots: None,
            addr: None,
        };
        for word in words {
            match word.split_once('=') {
                Some(("slots", n)) => match n.parse::<u32>() {
                    Ok(n) if n > 0 => host.slots = Some(n),
                    _ => return Err(error(format!("`{n}` is not a number of slots (1 or more)"))),
                },
                Some(("addr", ip)) => match ip.parse::<IpAddr>() {
                    Ok(ip) => host.addr = Some(ip),
                    Err(_) => return Err(error(format!("`{ip}` is not an IP address"))),
                },
                _ => {
                    return Err(error(format!(
                        "`{word}` is not understood; a line is `NAME [slots=N] [addr=IP]`"
                    )));
                }
            }
        }
        hosts.push(host);
    }
    finish(hosts)
}

fn finish(hosts: Vec<HostSpec>) -> Result<Vec<HostSpec>, HostsError> {
    if hosts.is_empty() {
        return Err(HostsError::Empty);
    }
    for (i, host) in hosts.iter().enumerate() {
        if hosts[..i].iter().any(|h| h.name == host.name) {
            return Err(HostsError::Duplicate(host.name.clone()));
        }
    }
    Ok(hosts)
}

/// Block placement: how many ranks each host gets, in host order (rank 0 on the first host
/// that gets any). Hosts with `slots` get up to that many; the rest is shared evenly by the
/// hosts without (earlier hosts get one more). With slots on every host, more ranks than
/// slots is an error.
pub fn place(hosts: &[HostSpec], ranks: u32) -> Result<Vec<u32>, HostsError> {
    let open = hosts.iter().filter(|h| h.slots.is_none()).count() as u32;
    let mut counts = Vec::with_capacity(hosts.len());
    let mut left = ranks;
    let mut open_left = open;
    for host in hosts {
        let take = match host.slots {
            Some(slots) => slots.min(left),
            None => {
                // What the slotted hosts after this one can still take stays for them.
                let later: u64 = hosts
                    .iter()
                    .skip(counts.len() + 1)
                    .filter_map(|h| h.slots)
                    .map(u64::from)
                    .sum();
                let for_open = u64::from(left).saturating_sub(later.min(u64::from(left)));
                let share = for_open.div_ceil(u64::from(open_left.max(1)));
                open_left -= 1;
                share as u32
            }
        };
        counts.push(take);
        left -= take;
    }
    if left > 0 {
        let slots = hosts.iter().filter_map(|h| h.slots).map(u64::from).sum();
        return Err(HostsError::TooFewSlots { ranks, slots });
    }
    Ok(counts)
}

/// How a node daemon is started on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// `ssh -o BatchMode=yes NODE …` for remote names, directly for this machine.
    Ssh,
    /// `srun --nodes=1 --ntasks=1 --nodelist=NODE …` inside a Slurm allocation.
    Slurm,
    /// A command prefix, words separated by blanks, `{node}` replaced by the node's name.
    Prefix(Vec<String>),
}

impl Launcher {
    /// `ssh`, `slurm`, or a prefix such as `ip netns exec {node}`.
    pub fn parse(text: &str) -> Result<Self, HostsError> {
        match text.trim() {
            "" => Err(HostsError::EmptyLauncher),
            "ssh" => Ok(Self::Ssh),
            "slurm" | "srun" => Ok(Self::Slurm),
            other => Ok(Self::Prefix(
                other.split_whitespace().map(str::to_owned).collect(),
            )),
        }
    }

    /// The text [`parse`](Self::parse) reads back as this launcher (what a snapshot records,
    /// so that `mpicr gc` reaches the job's nodes the way the job did).
    pub fn spec(&self) -> String {
        match self {
            Self::Ssh => "ssh".to_owned(),
            Self::Slurm => "slurm".to_owned(),
            Self::Prefix(words) => words.join(" "),
        }
    }

    /// The command line that runs `daemon` (program and arguments) on `node`.
    pub fn command(&self, node: &str, daemon: &[String]) -> Vec<String> {
        match self {
            Self::Ssh if is_this_machine(node) => daemon.to_vec(),
            // ssh hands the remote side one string, which the user's shell there splits: each
            // word is quoted so that it arrives as it is here.
            Self::Ssh => ["ssh", "-o", "BatchMode=yes", "-T", node]
                .iter()
                .map(|s| (*s).to_owned())
                .chain(daemon.iter().map(|w| shell_quote(w)))
                .collect(),
            Self::Slurm => {
                let mut c = vec![
                    "srun".to_owned(),
                    "--nodes=1".to_owned(),
                    "--ntasks=1".to_owned(),
                    format!("--nodelist={node}"),
                    "--input=all".to_owned(),
                ];
                c.extend(daemon.iter().cloned());
                c
            }
            Self::Prefix(words) => words
                .iter()
                .map(|w| w.replace("{node}", node))
                .chain(daemon.iter().cloned())
                .collect(),
        }
    }

    /// Whether the daemons run on other machines (so the coordinator must not listen on the
    /// loopback address).
    fn is_remote(&self, node: &str) -> bool {
        !matches!(self, Self::Ssh if is_this_machine(node))
    }
}

/// `word` as one word of a POSIX shell: as it is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside as `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `localhost`, or this machine's host name.
fn is_this_machine(node: &str) -> bool {
    node == "localhost"
        || node
            == rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .as_ref()
}

/// The address the coordinator listens on: `given`, else the local address that routes to
/// the first node with a known address (its `addr=`, else its name resolved), else loopback
/// when every daemon runs on this machine.
pub fn coordinator_addr(
    given: Option<IpAddr>,
    hosts: &[HostSpec],
    launcher: &Launcher,
) -> Result<IpAddr, String> {
    if let Some(ip) = given {
        return Ok(ip);
    }
    if !hosts.iter().any(|h| launcher.is_remote(&h.name)) {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    for host in hosts {
        let target = match host.addr {
            Some(ip) => Some(ip),
            None => (host.name.as_str(), 0)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip()),
        };
        if let Some(target) = target
            && let Some(local) = route_to(target)
        {
            return Ok(local);
        }
    }
    Err("cannot tell which address of this machine the nodes reach; give --coordinator-addr or addr= in the host file".into())
}

/// The local address the kernel would use to reach `target` (a UDP "connect" sends nothing).
fn route_to(target: IpAddr) -> Option<IpAddr> {
    let bind: IpAddr = match target {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((bind, 0)).ok()?;
    socket.connect((target, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// A new secret for a job: 32 random bytes from the kernel, as hex.
pub(crate) fn new_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, slots: Option<u32>) -> HostSpec {
        HostSpec {
            name: name.into(),
            slots,
            addr: None,
        }
    }

    #[test]
    fn host_files_parse_with_line_numbers_in_errors() {
        let hosts = parse_hostfile(
            "hf",
            "# nodes\n\nn1 slots=2 addr=10.0.0.2\nn2   # second\nn3 addr=10.0.0.4\n",
        )
        .unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].slots, Some(2));
        assert_eq!(hosts[0].addr, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(hosts[1], h("n2", None));
        let err = parse_hostfile("hf", "n1\nn2 slots=x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "hf:2: `x` is not a number of slots (1 or more)"
        );
        let err = parse_hostfile("hf", "n1 cpus=3\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("hf:1: `cpus=3` is not understood")
        );
        assert!(matches!(
            parse_hostfile("hf", "n1 addr=1.2.3\n"),
            Err(HostsError::Line { line: 1, .. })
        ));
        assert_eq!(parse_hostfile("hf", "# x\n"), Err(HostsError::Empty));
        assert_eq!(
            parse_hostfile("hf", "a\na\n"),
            Err(HostsError::Duplicate("a".into()))
        );
        assert!(matches!(
            parse_hostfile("hf", "a/b\n"),
            Err(HostsError::Line { line: 1, .. })
        ));
        assert_eq!(parse_hosts("a, b,c").unwrap().len(), 3);
    }

    #[test]
    fn placement_is_by_block() {
        let three = [h("a", None), h("b", None), h("c", None)];
        assert_eq!(place(&three, 8).unwrap(), vec![3, 3, 2]);
        assert_eq!(place(&three, 2).unwrap(), vec![1, 1, 0]);
        let slotted = [h("a", Some(2)), h("b", Some(2))];
        assert_eq!(place(&slotted, 3).unwrap(), vec![2, 1]);
        assert_eq!(
            place(&slotted, 5),
            Err(HostsError::TooFewSlots { ranks: 5, slots: 4 })
        );
        let mixed = [h("a", Some(1)), h("b", None), h("c", Some(2))];
        assert_eq!(place(&mixed, 6).unwrap(), vec![1, 3, 2]);
        assert_eq!(place(&mixed, 2).unwrap(), vec![1, 0, 1]);
    }

    #[test]
    fn launchers_build_commands() {
        let daemon = vec!["mpicr".to_owned(), "node".to_owned()];
        let netns = Launcher::parse("ip netns exec {node}").unwrap();
        assert_eq!(
            netns.command("n1", &daemon),
            ["ip", "netns", "exec", "n1", "mpicr", "node"]
        );
        let ssh = Launcher::parse("ssh").unwrap();
        assert_eq!(
            ssh.command("far", &daemon)[..5],
            ["ssh", "-o", "BatchMode=yes", "-T", "far"]
        );
        assert_eq!(ssh.command("localhost", &daemon), daemon);
        let spaced = vec!["/a b/mpicr".to_owned(), "it's".to_owned(), String::new()];
        assert_eq!(
            ssh.command("far", &spaced)[5..],
            ["'/a b/mpicr'", "'it'\\''s'", "''"]
        );
        for text in ["ssh", "slurm", "ip netns exec {node}"] {
            assert_eq!(Launcher::parse(text).unwrap().spec(), text);
        }
        assert!(Launcher::parse("slurm").unwrap().command("c1", &daemon)[3].contains("c1"));
        assert_eq!(Launcher::parse(" "), Err(HostsError::EmptyLauncher));
    }

    #[test]
    fn secrets_are_new_each_time() {
        let s = new_secret().unwrap();
        assert_eq!(s.len(), 64);
        assert_ne!(s, new_secret().unwrap());
    }
}
