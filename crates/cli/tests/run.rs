//! `mpicr run` as a user sees it: output, input, exit status, bad input, signals, cleanup.

mod common;

use common::*;
use rustix::process::Signal;

#[test]
fn hostname_on_three_ranks_prints_three_lines() {
    let sandbox = Sandbox::new("hostname");
    let done = sandbox.run(&["run", "-n", "3", "--", "hostname"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(done.lines(), vec![host.as_str(); 3]);
    assert!(done.stderr_lines().is_empty(), "{done:?}");
}

#[test]
fn program_without_double_dash_and_np_spelling() {
    let sandbox = Sandbox::new("np");
    let done = sandbox.run(&["run", "-np", "2", "echo", "-n", "x"]);
    assert_eq!(
        (done.code, done.stdout.as_str()),
        (Some(0), "x\nx\n"),
        "{done:?}"
    );
    for binary in [MPIRUN, MPIEXEC] {
        let done = sandbox.run_command(sandbox.command(binary, &["-np", "2", "echo", "hi"]), None);
        assert_eq!(
            (done.code, done.lines()),
            (Some(0), vec!["hi", "hi"]),
            "{binary}: {done:?}"
        );
    }
}

#[test]
fn tag_output_prefixes_every_line_including_a_partial_last_line() {
    let sandbox = Sandbox::new("tag");
    let script = "echo one; echo err >&2; printf partial";
    let done = sandbox.run(&["run", "-n", "2", "--tag-output", "--", "sh", "-c", script]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let mut lines = done.lines();
    lines.sort_unstable();
    assert_eq!(lines, ["[0] one", "[0] partial", "[1] one", "[1] partial"]);
    let mut errors = done.stderr_lines();
    errors.sort_unstable();
    assert_eq!(errors, ["[0] err", "[1] err"]);
}

#[test]
fn stdin_reaches_rank_zero_only() {
    let sandbox = Sandbox::new("stdin");
    let command = sandbox.command(
        MPICR,
        &[
            "run",
            "-n",
            "3",
            "--",
            "sh",
            "-c",
            "echo \"$MPICR_RANK:$(cat)\"",
        ],
    );
    let done = sandbox.run_command(command, Some(b"data for rank zero\n".to_vec()));
    assert_eq!(done.code, Some(0), "{done:?}");
    let mut lines = done.lines();
    lines.sort_unstable();
    assert_eq!(lines, ["0:data for rank zero", "1:", "2:"]);
}

#[test]
fn ranks_get_the_launch_environment() {
    let sandbox = Sandbox::new("env");
    let name = format!("env-{}", std::process::id());
    let script = "echo \"$MPICR_RANK|$MPICR_SIZE|$MPICR_JOB|$MPICR_CONTROL|$MPICR_TRANSPORT|\
                  $MPICR_SHM_DIR|$MPICR_NODE|$PMI_RANK|$PMI_SIZE|$(test -d \"$MPICR_SHM_DIR\" && echo ok)\"";
    let done = sandbox.run(&[
        "run",
        "-n",
        "2",
        "--transport",
        "tcp",
        "--job-name",
        &name,
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let socket = sandbox.runtime_dir().join(format!("{name}.sock"));
    let mut lines = done.lines();
    lines.sort_unstable();
    // The launcher's pid ends the name (`ShmDir`): take it from rank 0's line.
    let shm = std::path::PathBuf::from(lines[0].split('|').nth(5).unwrap_or_default());
    let pid: u32 = shm
        .to_string_lossy()
        .rsplit('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a launcher pid ends the shared-memory directory's name");
    assert_eq!(shm, shm_dir(&name, pid));
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    for (rank, line) in lines.iter().enumerate() {
        let expected = format!(
            "{rank}|2|{name}|{}|tcp|{}|{host}|{rank}|2|ok",
            socket.display(),
            shm.display()
        );
        assert_eq!(*line, expected);
    }
    assert!(!exists(&shm), "the shared-memory directory is removed");
    assert!(!exists(&socket), "the control socket is removed");
    assert_eq!(sockets(&sandbox.runtime_dir()), Vec::<String>::new());
}

/// The CPUs this process may run on, as `Cpus_allowed_list` writes them, expanded.
fn allowed_cpus(status: &str) -> Vec<u32> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in the status")
        .trim();
    let cpu = |s: &str| s.parse::<u32>().expect("a CPU number");
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (cpu(a)..=cpu(b)).collect::<Vec<u32>>(),
            None => vec![cpu(part)],
        })
        .collect()
}

#[test]
fn bind_to_places_the_ranks_on_the_launchers_cpus_in_rank_order() {
    let sandbox = Sandbox::new("bind");
    let ours = allowed_cpus(&std::fs::read_to_string("/proc/self/status").unwrap());
    let script = "echo \"$MPICR_RANK|${MPICR_BIND_TO-unset}|$MPICR_NODE_CPUS|\
                  $(grep Cpus_allowed_list /proc/self/status | cut -f2)\"";
    let ranks = ours.len() + 1;
    let n = ranks.to_string();
    let bound = sandbox.run_command(
        sandbox.command(
            "mpirun",
            &["-bind-to", "hwthread", "-np", &n, "sh", "-c", script],
        ),
        None,
    );
    assert_eq!(bound.code, Some(0), "{bound:?}");
    let unbound = sandbox.run(&["run", "-n", &n, "--", "sh", "-c", script]);
    assert_eq!(unbound.code, Some(0), "{unbound:?}");
    let all = ours
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    for (done, bind) in [(&bound, "hwthread"), (&unbound, "unset")] {
        let mut lines = done.lines();
        lines.sort_unstable_by_key(|l| l.split('|').next().unwrap().parse::<usize>().unwrap());
        assert_eq!(lines.len(), ranks, "{done:?}");
        for (rank, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split('|').collect();
            assert_eq!(
                fields[..3],
                [&rank.to_string(), bind, &ours.len().to_string()][..]
            );
            let cpus = allowed_cpus(&format!("Cpus_allowed_list:{}", fields[3]));
            if bind == "unset" {
                assert_eq!(
                    cpus, ours,
                    "rank {rank} is not bound: {line} (launcher: {all})"
                );
            } else {
                // One CPU each, in order, wrapping around after the last.
                assert_eq!(cpus, [ours[rank % ours.len()]], "rank {rank}: {line}");
            }
        }
    }
}

/// The first rank to fail sets the status, and what it said before it failed comes before
/// the launcher's line about its end.
#[test]
fn the_first_failing_rank_sets_the_exit_status() {
    let sandbox = Sandbox::new("exit3");
    let script = "if [ \"$MPICR_RANK\" = 1 ]; then echo 'rank 1 gives up' >&2; exit 3; fi; \
                  exec sleep 1000";
    let done = sandbox.run(&["run", "-n", "3", "--", "sh", "-c", script]);
    assert_eq!(done.code, Some(3), "{done:?}");
    let errors = done.stderr_lines();
    assert_eq!(errors.len(), 2, "{done:?}");
    assert_eq!(errors[0], "rank 1 gives up", "{done:?}");
    assert!(errors[1].starts_with("mpicr: rank 1 (pid "), "{done:?}");
    assert!(
        errors[1].ends_with(") exited with status 3; ending the job"),
        "{done:?}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn a_rank_killed_by_a_signal_gives_128_plus_the_signal() {
    let sandbox = Sandbox::new("kill9");
    let script = "if [ \"$MPICR_RANK\" = 2 ]; then kill -9 $$; fi; exec sleep 1000";
    let done = sandbox.run(&["run", "-n", "3", "--", "sh", "-c", script]);
    assert_eq!(done.code, Some(137), "{done:?}");
    let errors = done.stderr_lines();
    assert_eq!(errors.len(), 1, "{done:?}");
    assert!(errors[0].starts_with("mpicr: rank 2 (pid "), "{done:?}");
    assert!(
        errors[0].ends_with("was killed by signal 9 (SIGKILL); ending the job"),
        "{done:?}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn bad_input_gives_one_line_and_a_nonzero_status() {
    let sandbox = Sandbox::new("bad");
    let file = sandbox.dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let file = file.to_str().unwrap();
    let dir = sandbox.dir.path().to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--bogus", "-n", "2", "true"],
            2,
            "unexpected argument '--bogus'",
        ),
        (&["run", "-n", "0", "true"], 2, "at least 1 rank"),
        (&["run", "-n", "2"], 2, "no program"),
        (&["run", "-n", "2", "--"], 2, "no program"),
        (&["run", "true"], 2, "--np"),
        (
            &["run", "-n", "2", "no-such-program-mpicr"],
            1,
            "not found in PATH",
        ),
        (
            &["run", "-n", "2", "./no-such-program-mpicr"],
            1,
            "does not exist",
        ),
        (&["run", "-n", "2", file], 1, "is not executable"),
        (&["run", "-n", "2", dir], 1, "is a directory"),
        (
            &["run", "-n", "2", "--job-name", "123", "true"],
            2,
            "taken for the pid",
        ),
        (
            &["run", "-n", "2", "--job-name", "a/b", "true"],
            2,
            "may only contain",
        ),
        (
            &["run", "-n", "2", "--transport", "udp", "true"],
            2,
            "invalid value 'udp'",
        ),
        (
            &["run", "-n", "2", "--crs", "imag", "true"],
            2,
            "(one of: self, image); did you mean image? Try 'mpicr run --help'",
        ),
        (&["run", "--np2", "true"], 2, "did you mean --np? Try"),
        (
            &["stauts"],
            2,
            "did you mean restart or status? Try 'mpicr --help'",
        ),
        (
            &["run", "-n", "2", "--bind-to", "socket", "true"],
            2,
            "invalid value 'socket'",
        ),
        (
            &[
                "run",
                "-n",
                "2",
                "--hosts",
                "a,b",
                "--storage",
                "s/{node}",
                "true",
            ],
            1,
            "--storage s/{node} must be an absolute path",
        ),
        (
            &[
                "run",
                "-n",
                "2",
                "--crs",
                "self",
                "--compress",
                "zstd",
                "true",
            ],
            2,
            "--compress applies to process images",
        ),
        (
            &[
                "run",
                "-n",
                "2",
                "--crs",
                "self",
                "--full-every",
                "3",
                "true",
            ],
            2,
            "--full-every applies to process images",
        ),
        (&["frobnicate"], 2, "unrecognized subcommand"),
        (
            &["status", "no-such-job"],
            1,
            "no job named `no-such-job` is running",
        ),
        (
            &["status", "99999999"],
            1,
            "no job started by pid 99999999 is running",
        ),
    ];
    for (args, code, text) in cases {
        let done = sandbox.run(args);
        let errors = done.stderr_lines();
        assert_eq!(done.code, Some(*code), "{args:?}: {done:?}");
        assert_eq!(errors.len(), 1, "{args:?}: {done:?}");
        assert!(errors[0].starts_with("mpicr: "), "{args:?}: {done:?}");
        assert!(errors[0].contains(text), "{args:?}: {done:?}");
    }
}

#[test]
fn a_taken_job_name_is_refused() {
    let sandbox = Sandbox::new("taken");
    let name = format!("taken-{}", std::process::id());
    let first = sandbox.start(&["run", "-n", "1", "--job-name", &name, "--", "sleep", "1000"]);
    let socket = sandbox.runtime_dir().join(format!("{name}.sock"));
    wait_until("the first job's socket", || exists(&socket));
    let second = sandbox.run(&["run", "-n", "1", "--job-name", &name, "--", "true"]);
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(
        second.stderr_lines()[0].contains("already uses the name"),
        "{second:?}"
    );
    first.signal(Signal::TERM);
    assert_eq!(first.wait().code, Some(143));
}

/// Starts `-n 3` ranks of `script` and waits until the three `sleep`s run.
fn start_sleepers(sandbox: &Sandbox, script: &str) -> Running {
    let launcher = sandbox.start(&["run", "-n", "3", "--", "sh", "-c", script]);
    wait_until("three sleeping ranks", || {
        marked_named(&sandbox.marker, "sleep").len() == 3
    });
    launcher
}

#[test]
fn ctrl_c_ends_the_job_and_leaves_nothing_behind() {
    let sandbox = Sandbox::new("sigint");
    let launcher = start_sleepers(&sandbox, "exec sleep 1000");
    let pid = launcher.pid();
    launcher.signal(Signal::INT);
    let done = launcher.wait();
    assert_eq!(done.code, Some(130), "{done:?}");
    assert_eq!(
        done.stderr_lines(),
        ["mpicr: received SIGINT; ending the job"]
    );
    sandbox.assert_nothing_left();
    assert!(!exists(&shm_dir(&format!("job-{pid}"), pid)));
    assert_eq!(sockets(&sandbox.runtime_dir()), Vec::<String>::new());
}

#[test]
fn sigterm_ends_ranks_that_ignore_it_after_the_grace_period() {
    let sandbox = Sandbox::new("sigterm");
    let launcher = start_sleepers(&sandbox, "trap '' TERM; exec sleep 1000");
    launcher.signal(Signal::TERM);
    let done = launcher.wait();
    assert_eq!(done.code, Some(143), "{done:?}");
    sandbox.assert_nothing_left();
    assert_eq!(sockets(&sandbox.runtime_dir()), Vec::<String>::new());
}

#[test]
fn sighup_ends_the_job() {
    let sandbox = Sandbox::new("sighup");
    let launcher = start_sleepers(&sandbox, "exec sleep 1000");
    launcher.signal(Signal::HUP);
    assert_eq!(launcher.wait().code, Some(129));
    sandbox.assert_nothing_left();
}

#[test]
fn kill_9_of_the_launcher_leaves_no_rank_behind() {
    let sandbox = Sandbox::new("orphan");
    let launcher = start_sleepers(&sandbox, "exec sleep 1000");
    let pid = launcher.pid();
    // Checked while the job runs: once its launcher is dead, any launcher that starts (another
    // test's) may remove its shared memory as a dead owner's.
    let shm = shm_dir(&format!("job-{pid}"), pid);
    assert!(exists(&shm));
    launcher.signal(Signal::KILL);
    let done = launcher.wait();
    assert_eq!(done.code, None, "killed by a signal");
    sandbox.assert_nothing_left();
    // The socket, status file and shared memory left behind are stale; listing the jobs
    // removes them.
    assert_eq!(
        sockets(&sandbox.runtime_dir()),
        [format!("{pid}.sock"), format!("job-{pid}.sock")]
    );
    let board = sandbox.runtime_dir().join(format!("job-{pid}.checkpoint"));
    assert!(exists(&board));
    let list = sandbox.run(&["status"]);
    assert_eq!(
        (list.code, list.stdout.as_str()),
        (Some(0), "no mpicr jobs are running\n")
    );
    assert_eq!(sockets(&sandbox.runtime_dir()), Vec::<String>::new());
    assert!(!exists(&shm), "the dead job's shared memory is removed");
    assert!(
        !exists(&board),
        "the dead job's checkpoint status is removed"
    );
}

#[test]
fn ranks_register_and_receive_the_process_table() {
    let sandbox = Sandbox::new("register");
    let done = sandbox.run(&["run", "-n", "3", "--", "mpicr-test-rank"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    for rank in 0..3 {
        for peer in 0..3 {
            let seen = format!("rank {rank} sees rank {peer}: pid ");
            let line = done.lines().into_iter().find(|l| l.starts_with(&seen));
            let line = line.unwrap_or_else(|| panic!("no line {seen}: {done:?}"));
            assert!(
                line.ends_with(&format!(" state running addr test:{peer}")),
                "{line}"
            );
        }
    }
}

/// The default checkpointer (`image`) preloads nothing: a rank started through a shell that
/// forks it in a one-rank job registers itself. With `--crs image` given, the preloaded runtime
/// registers the shell, which hands the registration over only to a program it executes, not
/// to one it forks: that is why only an explicit `--crs image` preloads (ARCHITECTURE.md,
/// "Programs without MPI").
#[test]
fn a_one_rank_job_through_a_forking_shell_registers_its_rank_under_the_default() {
    let sandbox = Sandbox::new("wrapper");
    let wrapped = ["-n", "1", "--", "sh", "-c", "mpicr-test-rank && true"];
    let done = sandbox.run(&[&["run"][..], &wrapped].concat());
    assert_eq!(done.code, Some(0), "{done:?}");
    let line = done
        .lines()
        .into_iter()
        .find(|l| l.starts_with("rank 0 sees rank 0: pid "));
    assert!(line.is_some(), "{done:?}");
    let preloaded = sandbox.run(&[&["run", "--crs", "image"][..], &wrapped].concat());
    assert_ne!(preloaded.code, Some(0), "{preloaded:?}");
    assert!(
        preloaded.stderr.contains("rank 0 has already registered"),
        "{preloaded:?}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn abort_ends_the_job_with_its_code() {
    let sandbox = Sandbox::new("abort");
    let mut command = sandbox.command(MPICR, &["run", "-n", "3", "--", "mpicr-test-rank"]);
    command.env("MPICR_TEST_ABORT", "1:7");
    let done = sandbox.run_command(command, None);
    assert_eq!(done.code, Some(7), "{done:?}");
    let errors = done.stderr_lines();
    let line = errors.iter().find(|l| l.contains("called abort"));
    let line = line.unwrap_or_else(|| panic!("no abort line: {done:?}"));
    assert!(line.starts_with("mpicr: rank 1 (pid "), "{line}");
    assert!(
        line.ends_with(") called abort with code 7: test abort"),
        "{line}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn the_runtime_directory_is_private_and_an_open_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new("perm");
    assert_eq!(sandbox.run(&["run", "-n", "1", "true"]).code, Some(0));
    let mode = std::fs::metadata(sandbox.runtime_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    std::fs::set_permissions(
        sandbox.runtime_dir(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let done = sandbox.run(&["run", "-n", "1", "true"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(
        done.stderr_lines()[0].contains("open to other users"),
        "{done:?}"
    );
}

#[test]
fn demo_says_clearly_when_its_program_is_missing() {
    let sandbox = Sandbox::new("demo");
    let copy = sandbox.dir.path().join("mpicr");
    std::fs::copy(MPICR, &copy).unwrap();
    let done = sandbox.run_command(sandbox.command(copy.to_str().unwrap(), &["demo"]), None);
    assert_eq!(done.code, Some(1), "{done:?}");
    let errors = done.stderr_lines();
    assert_eq!(errors.len(), 1, "{done:?}");
    assert!(
        errors[0].contains("mpicr-heat is missing; `cargo build --release` builds it"),
        "{done:?}"
    );
}
