//! The control socket and `mpicr status`: lookup by name and pid, the JSON, the protocol as
//! a rank speaks it, and refusal of bad input and of other users.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use common::*;
use rustix::process::Signal;
use serde_json::Value;
use wire::stream::{ReadError, read_message, write_message};
use wire::{Exit, Message, ProcState, Register};

/// A job of `n` sleeping ranks named after the test, with its socket published.
fn sleeping_job(sandbox: &Sandbox, name: &str, n: usize) -> (Running, PathBuf) {
    let ranks = n.to_string();
    let launcher = sandbox.start(&[
        "run",
        "-n",
        &ranks,
        "--job-name",
        name,
        "--",
        "sleep",
        "1000",
    ]);
    let socket = sandbox.runtime_dir().join(format!("{name}.sock"));
    wait_until("the job's ranks to start", || {
        exists(&socket) && marked_named(&sandbox.marker, "sleep").len() == n
    });
    (launcher, socket)
}

fn status_json(sandbox: &Sandbox, job: &str) -> Value {
    let done = sandbox.run(&["status", job, "--json"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {}", done.stdout))
}

fn end(launcher: Running) -> Finished {
    launcher.signal(Signal::TERM);
    let done = launcher.wait();
    assert_eq!(done.code, Some(143), "{done:?}");
    done
}

#[test]
fn status_by_name_and_by_pid_in_text_and_json() {
    let sandbox = Sandbox::new("status");
    let name = format!("status-{}", std::process::id());
    let (launcher, _) = sleeping_job(&sandbox, &name, 2);
    let pid = launcher.pid().to_string();

    let text = sandbox.run(&["status", &name]);
    assert_eq!(text.code, Some(0), "{text:?}");
    let lines = text.lines();
    assert!(
        lines[0].starts_with(&format!("job {name}  launcher pid {pid}  started ")),
        "{text:?}"
    );
    assert_eq!(lines[1], "command: sleep 1000");
    assert!(lines[2].starts_with("RANK  NODE"), "{text:?}");
    assert_eq!(lines.len(), 5, "{text:?}");
    assert!(
        lines[3].starts_with("0 ") && lines[3].contains(" spawned"),
        "{text:?}"
    );

    for job in [name.as_str(), pid.as_str()] {
        let json = status_json(&sandbox, job);
        assert_eq!(json["job"], name.as_str());
        assert_eq!(json["launcher_pid"].to_string(), pid);
        assert_eq!(json["command"], serde_json::json!(["sleep", "1000"]));
        let ranks = json["ranks"].as_array().expect("a ranks array");
        assert_eq!(ranks.len(), 2);
        let sleepers = marked_named(&sandbox.marker, "sleep");
        for (i, rank) in ranks.iter().enumerate() {
            assert_eq!(rank["rank"], i);
            assert_eq!(rank["state"], "spawned");
            assert!(rank["node"].as_str().is_some_and(|n| !n.is_empty()));
            let rank_pid = rank["pid"].as_i64().expect("a pid") as i32;
            assert!(sleepers.contains(&rank_pid), "{rank} not in {sleepers:?}");
        }
    }

    let list = sandbox.run(&["status"]);
    assert_eq!(list.code, Some(0));
    assert!(
        list.lines()[1].starts_with(&format!("{name}  {pid}  2  ")),
        "{list:?}"
    );
    let list = sandbox.run(&["status", "--json"]);
    let jobs: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(jobs[0]["job"], name.as_str());
    end(launcher);
    assert_eq!(sockets(&sandbox.runtime_dir()), Vec::<String>::new());
}

fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).expect("the control socket accepts");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout");
    stream
}

/// Sends `bytes` and returns what the coordinator answered before closing.
fn answer_to(socket: &Path, bytes: &[u8]) -> Result<Message, ReadError> {
    let mut stream = connect(socket);
    stream.write_all(bytes).expect("the bytes are sent");
    read_message(&mut stream)
}

fn refusal(answer: Result<Message, ReadError>) -> String {
    match answer {
        Ok(Message::Error(sentence)) => sentence,
        other => panic!("expected an ERROR message, got {other:?}"),
    }
}

#[test]
fn garbage_and_bad_registrations_are_refused_and_the_job_keeps_running() {
    let sandbox = Sandbox::new("garbage");
    let name = format!("garbage-{}", std::process::id());
    let (launcher, socket) = sleeping_job(&sandbox, &name, 2);
    let mut seed = 0x9e37_79b9_u32;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    assert!(
        refusal(answer_to(&socket, &random)).contains("does not speak the mpicr control protocol")
    );

    let mut huge = Message::StatusRequest.encode();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(refusal(answer_to(&socket, &huge)).contains("exceeds the limit"));

    let mut corrupt = Message::Exit(Exit { rank: 0 }).encode();
    corrupt[12] ^= 1;
    assert!(refusal(answer_to(&socket, &corrupt)).contains("checksum"));

    let register = |rank, pid| {
        Message::Register(Register {
            rank,
            pid,
            host: "test".into(),
            data_addr: format!("test:{rank}"),
        })
    };
    let me = std::process::id();
    let sentence = refusal(answer_to(&socket, &register(7, me).encode()));
    assert_eq!(sentence, "rank 7 does not exist in a job of 2 ranks");
    let sentence = refusal(answer_to(&socket, &register(0, me).encode()));
    assert!(
        sentence.starts_with(&format!("pid {me} is not the process started as rank 0")),
        "{sentence}"
    );
    let exit = Message::Exit(Exit { rank: 0 }).encode();
    assert!(refusal(answer_to(&socket, &exit)).contains("Exit message is not accepted"));

    // Register both ranks by hand with the pids the node started: the table goes out to both.
    let json = status_json(&sandbox, &name);
    let pid_of = |rank: usize| json["ranks"][rank]["pid"].as_u64().unwrap() as u32;
    let mut rank0 = connect(&socket);
    write_message(&mut rank0, &register(0, pid_of(0))).unwrap();
    let mut rank1 = connect(&socket);
    write_message(&mut rank1, &register(1, pid_of(1))).unwrap();
    for link in [&mut rank0, &mut rank1] {
        match read_message(link) {
            Ok(Message::Refresh(refresh)) => {
                assert_eq!(refresh.table.len(), 2);
                for (rank, entry) in refresh.table.iter().enumerate() {
                    assert_eq!(entry.state, ProcState::Running);
                    assert_eq!(entry.data_addr, format!("test:{rank}"));
                    assert_eq!(entry.pid, pid_of(rank));
                }
            }
            other => panic!("expected the table, got {other:?}"),
        }
    }
    let again = refusal(answer_to(&socket, &register(0, pid_of(0)).encode()));
    assert_eq!(again, "rank 0 has already registered");
    write_message(&mut rank0, &Message::Exit(Exit { rank: 0 })).unwrap();
    wait_until("rank 0 to be finalized", || {
        status_json(&sandbox, &name)["ranks"][0]["state"] == "finalized"
    });
    assert_eq!(
        status_json(&sandbox, &name)["ranks"][1]["data_addr"],
        "test:1"
    );

    let done = end(launcher);
    let refused: Vec<_> = done
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("mpicr: refused a control connection: "))
        .collect();
    assert_eq!(refused.len(), 7, "{done:?}");
}

#[test]
fn a_peer_of_another_uid_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = Path::new("/usr/bin/setpriv");
    if !rustix::process::geteuid().is_root() || !setpriv.exists() {
        println!("skipped: needs root and setpriv to act as uid 65534");
        return;
    }
    let sandbox = Sandbox::new("foreign");
    let name = format!("foreign-{}", std::process::id());
    let (launcher, socket) = sleeping_job(&sandbox, &name, 1);
    // The runtime directory keeps uid 65534 out altogether; to reach the socket's own check,
    // give it a second name in a directory that user may enter.
    let open_dir = tempfile::Builder::new()
        .prefix("mpicr-peer")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let door = open_dir.path().join("door.sock");
    std::fs::hard_link(&socket, &door).unwrap();
    std::fs::set_permissions(&door, std::fs::Permissions::from_mode(0o777)).unwrap();

    let mut client = sandbox.command(
        "/usr/bin/setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            TEST_RANK,
        ],
    );
    client
        .env("MPICR_CONTROL", &door)
        .env("MPICR_RANK", "0")
        .env("MPICR_NODE", "elsewhere");
    let peer = sandbox.run_command(client, None);
    assert_eq!(peer.code, Some(1), "{peer:?}");
    assert!(
        peer.stderr
            .contains("the coordinator refused: the peer runs as uid 65534"),
        "{peer:?}"
    );
    // The job is untouched.
    assert_eq!(status_json(&sandbox, &name)["ranks"][0]["state"], "spawned");
    let done = end(launcher);
    let line = "mpicr: refused a control connection: the peer runs as uid 65534";
    assert!(
        done.stderr_lines().iter().any(|l| l.starts_with(line)),
        "{done:?}"
    );
}
