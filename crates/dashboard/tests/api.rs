//! The dashboard's API against a real job: `mpicr run` of two `mpicr-ckpt-ring` ranks and
//! `mpicr dashboard`, in a private runtime and state directory.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Waits until the dashboard shows job `name` with `n` running ranks.
fn wait_for_job(dash: &Dashboard, name: &str, n: usize) -> Value {
    let mut job = Value::Null;
    wait_until("the job's ranks to run", Duration::from_secs(60), || {
        let reply = dash.get(&format!("/api/job/{name}"));
        if reply.status != 200 {
            return false;
        }
        job = reply.json();
        job["ranks"]
            .as_array()
            .is_some_and(|ranks| ranks.len() == n && ranks.iter().all(|r| r["state"] == "running"))
    });
    job
}

#[test]
fn api_of_a_running_job() {
    let sandbox = Sandbox::new();
    let name = job_name("api");
    // Long enough to outlive the test; it is ended by the checkpoint-and-terminate below (or
    // by the sandbox).
    let launcher = sandbox.start_job(&name, 2, 3000);
    let dash = sandbox.start_dashboard(&[]);
    assert_eq!(dash.token.len(), 64, "{dash:?}");

    // The token: none, wrong, in the query, as a bearer header.
    for path in [
        "/",
        "/api/jobs",
        "/api/snapshots",
        "/api/events",
        "/metrics",
        "/nowhere",
    ] {
        let reply = dash.request("GET", path, None, "");
        assert_eq!(reply.status, 401, "{path}: {reply:?}");
        assert!(reply.error().contains("token"), "{reply:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"mpicr\"")
        );
        let wrong = "0".repeat(64);
        assert_eq!(
            dash.request("GET", path, Some(&wrong), "").status,
            401,
            "{path}"
        );
        let query = format!("{path}?token={wrong}");
        assert_eq!(dash.request("GET", &query, None, "").status, 401, "{path}");
    }
    let short = &dash.token[..63];
    assert_eq!(
        dash.request("GET", "/api/jobs", Some(short), "").status,
        401
    );
    let page = dash.request("GET", &format!("/?token={}", dash.token), None, "");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(page.body.contains("<title>mpicr dashboard</title>"));
    assert!(page.body.contains("EventSource"), "the script is inlined");
    for outside in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "fetch(\"http",
    ] {
        assert!(
            !page.body.contains(outside),
            "nothing from the network: {outside}"
        );
    }
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("content-security-policy").is_some());

    // The process table, with CPU and memory of the local ranks.
    let job = wait_for_job(&dash, &name, 2);
    assert_eq!(job["job"], name.as_str());
    assert_eq!(job["launcher_pid"], launcher);
    for (i, rank) in job["ranks"].as_array().expect("ranks").iter().enumerate() {
        assert_eq!(rank["rank"], i);
        assert_eq!(rank["local"], true, "{rank}");
        assert!(rank["pid"].as_u64().is_some_and(|p| p > 0), "{rank}");
        assert!(rank["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{rank}");
        assert!(rank["cpu_seconds"].as_f64().is_some(), "{rank}");
    }
    let jobs = dash.get("/api/jobs").json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["job"], name.as_str());
    assert_eq!(dash.get("/api/snapshots").json(), serde_json::json!([]));
    // The CPU share needs two samples half a second apart.
    std::thread::sleep(Duration::from_millis(700));
    let again = dash.get(&format!("/api/job/{name}")).json();
    assert!(
        again["ranks"][0]["cpu_percent"].as_f64().is_some(),
        "{again}"
    );
    // By the pid of `mpicr run` too.
    assert_eq!(
        dash.get(&format!("/api/job/{launcher}")).json()["job"],
        name.as_str()
    );

    // Unknown and malformed jobs, paths and methods.
    let reply = dash.get("/api/job/nosuch");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.error(), "no job named `nosuch` is running");
    let reply = dash.get("/api/job/bad%20name");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply.error().contains("neither a job name nor the pid"),
        "{reply:?}"
    );
    let reply = dash.get("/api/nowhere");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert!(reply.error().starts_with("there is nothing at this path"));
    for (method, path) in [
        ("POST", "/api/jobs".to_owned()),
        ("DELETE", format!("/api/job/{name}")),
        ("GET", format!("/api/job/{name}/checkpoint")),
        ("PUT", "/metrics".to_owned()),
    ] {
        let reply = dash.request(method, &path, Some(&dash.token), "");
        assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
        assert!(
            reply.error().contains("does not take that method"),
            "{reply:?}"
        );
    }
    let checkpoint = format!("/api/job/{name}/checkpoint");
    for body in [
        "{",
        "[]",
        "true",
        r#"{"terminate": "yes"}"#,
        r#"{"terminat": true}"#,
    ] {
        let reply = dash.post(&checkpoint, body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(
            reply.error().starts_with("the body must be a JSON object"),
            "{reply:?}"
        );
    }
    let reply = dash.post(&checkpoint, &" ".repeat(5000));
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.error(), "the request body is longer than 4096 bytes");
    let reply = dash.post("/api/job/nosuch/checkpoint", "{}");
    assert_eq!(reply.status, 404, "{reply:?}");
    let reply = dash.get("/api/snapshots?job=a&job=b");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply.error().starts_with("the query cannot be read"),
        "{reply:?}"
    );
    let reply = dash.raw(b"NONSENSE\r\n\r\n");
    assert_eq!(reply.status, 400, "{reply:?}");

    // Migration: malformed requests, a rank or node that cannot be right, and a job on one
    // machine, which refuses it (409, its own sentence) and runs on.
    let migrate = format!("/api/job/{name}/migrate");
    for body in [
        "",
        "{",
        "[]",
        "{}",
        r#"{"rank": 0}"#,
        r#"{"node": "x"}"#,
        r#"{"rank": "0", "node": "x"}"#,
        r#"{"rank": -1, "node": "x"}"#,
        r#"{"rank": 0, "node": ""}"#,
        r#"{"rank": 0, "node": "x", "now": true}"#,
    ] {
        let reply = dash.post(&migrate, body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(
            reply
                .error()
                .starts_with("the body must be a JSON object like {\"rank\""),
            "{reply:?}"
        );
    }
    let reply = dash.post(&migrate, &" ".repeat(5000));
    assert_eq!(reply.status, 413, "{reply:?}");
    let reply = dash.request("GET", &migrate, Some(&dash.token), "");
    assert_eq!(reply.status, 405, "{reply:?}");
    let reply = dash.request("POST", &migrate, None, r#"{"rank": 0, "node": "x"}"#);
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = dash.post("/api/job/nosuch/migrate", r#"{"rank": 0, "node": "x"}"#);
    assert_eq!(reply.status, 404, "{reply:?}");
    let reply = dash.post(&migrate, r#"{"rank": 7, "node": "x"}"#);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.error(),
        format!("job {name} has no rank 7 (it has 2)")
    );
    let home = job["ranks"][0]["node"].as_str().expect("a node").to_owned();
    let reply = dash.post(&migrate, &format!(r#"{{"rank": 0, "node": "{home}"}}"#));
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.error(), format!("rank 0 is already on node {home}"));
    let reply = dash.post(&migrate, r#"{"rank": 1, "node": "elsewhere"}"#);
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(
        reply.error().starts_with(&format!(
            "job {name} runs on one machine; migration needs a job on several nodes"
        )),
        "{reply:?}"
    );
    // Nothing of the above was a checkpoint request.
    let metrics = dash.get("/metrics").body;
    assert!(
        metrics.contains("mpicr_dashboard_checkpoints_requested_total 0\n"),
        "{metrics}"
    );

    // A checkpoint through the API.
    let done = dash.post(&checkpoint, "");
    assert_eq!(done.status, 200, "{done:?}");
    let done = done.json();
    assert_eq!(done["name"], format!("{name}.1"));
    assert_eq!(done["epoch"], 1);
    assert_eq!(done["terminate"], false);
    // The coordinator's record of how long it took, read back from the manifest.
    let took = done["duration_ms"].as_u64().expect("a duration");
    assert!(
        done["stall_bound_ms"].as_u64().is_some_and(|s| s <= took),
        "{done}"
    );
    assert!(done["size"].as_u64().is_some_and(|s| s > 0), "{done}");
    let snapshots = dash.get("/api/snapshots").json();
    assert_eq!(snapshots[0]["name"], format!("{name}.1"), "{snapshots}");
    assert_eq!(snapshots[0]["ranks"], 2);
    assert_eq!(snapshots[0]["duration_ms"], took, "{snapshots}");
    // Parts written into the snapshot directory: one copy each.
    assert_eq!(
        snapshots[0]["redundancy"],
        serde_json::json!({"kind": "none"}),
        "{snapshots}"
    );
    assert!(snapshots[0]["size"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(
        dash.get("/api/snapshots?job=other").json(),
        serde_json::json!([])
    );
    let job = dash.get(&format!("/api/job/{name}")).json();
    assert_eq!(job["snapshots"][0]["name"], format!("{name}.1"), "{job}");
    assert_eq!(job["checkpoint"]["last"], format!("{name}.1"), "{job}");

    // The metrics, with the token as a bearer header (as Prometheus sends it).
    let reply = dash.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let m = reply.body;
    for line in [
        "mpicr_jobs_running 1\n".to_owned(),
        format!("mpicr_ranks{{job=\"{name}\",state=\"running\"}} 2\n"),
        format!("mpicr_ranks{{job=\"{name}\",state=\"exited\"}} 0\n"),
        format!("mpicr_snapshots{{job=\"{name}\"}} 1\n"),
        format!("mpicr_snapshot_latest_epoch{{job=\"{name}\"}} 1\n"),
        "mpicr_dashboard_checkpoints_requested_total 1\n".to_owned(),
        "mpicr_dashboard_checkpoints_committed_total 1\n".to_owned(),
        "mpicr_dashboard_checkpoints_failed_total 0\n".to_owned(),
        // Refused migration requests are not migrations.
        format!("mpicr_migrations_total{{job=\"{name}\"}} 0\n"),
        format!("mpicr_migrations_failed_total{{job=\"{name}\"}} 0\n"),
        format!("mpicr_migration_duration_seconds_count{{job=\"{name}\"}} 0\n"),
        format!("mpicr_mirrored_bytes_total{{job=\"{name}\"}} 0\n"),
        "# TYPE mpicr_snapshot_bytes gauge\n".to_owned(),
        "# TYPE mpicr_checkpoint_duration_seconds histogram\n".to_owned(),
        format!("mpicr_checkpoint_duration_seconds_count{{job=\"{name}\"}} 1\n"),
        format!("mpicr_checkpoint_duration_seconds_bucket{{job=\"{name}\",le=\"+Inf\"}} 1\n"),
        format!("mpicr_checkpoint_size_bytes_count{{job=\"{name}\"}} 1\n"),
        format!(
            "mpicr_checkpoint_last_duration_seconds{{job=\"{name}\"}} {}\n",
            took as f64 / 1000.0
        ),
        format!("mpicr_recovery_duration_seconds_count{{job=\"{name}\"}} 0\n"),
    ] {
        assert!(m.contains(&line), "{line} in {m}");
    }

    // The event stream: an update at once, with the job and its snapshot.
    let (head, events) = dash.first_event();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let data = events
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("a data line in {events:?}"));
    // (The stream is chunked: a chunk's size comes first.)
    assert!(events.contains("\r\nevent: update\ndata: {"), "{events:?}");
    let overview: Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(overview["jobs"][0]["job"], name.as_str());
    assert_eq!(
        overview["jobs"][0]["ranks"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(overview["snapshots"][0]["name"], format!("{name}.1"));
    assert_eq!(overview["restart"], true);
    assert_eq!(
        overview["jobs"][0]["actions"],
        serde_json::json!(["checkpoint", "terminate"])
    );

    // A dashboard of another job only does not show or touch this one.
    let other = sandbox.start_dashboard(&["--job", "other"]);
    assert_eq!(other.get("/api/jobs").json(), serde_json::json!([]));
    assert_eq!(other.get("/api/snapshots").json(), serde_json::json!([]));
    let reply = other.post(&checkpoint, "{}");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert!(reply.error().contains("only its own job"), "{reply:?}");
    let mine = sandbox.start_dashboard(&["--job", &name]);
    assert_eq!(mine.get("/api/jobs").json()[0]["job"], name.as_str());
    assert_eq!(
        mine.get("/api/snapshots").json()[0]["name"],
        format!("{name}.1")
    );

    // Checkpoint and terminate: the job ends with status 0 and leaves the list.
    let done = dash.post(&checkpoint, r#"{"terminate": true}"#);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json()["name"], format!("{name}.2"));
    assert_eq!(
        sandbox.wait_exit(launcher, Duration::from_secs(30)),
        Some(0)
    );
    wait_until("the job to leave the list", Duration::from_secs(10), || {
        dash.get("/api/jobs").json() == serde_json::json!([])
    });
    let reply = dash.post(&checkpoint, "{}");
    assert_eq!(reply.status, 404, "{reply:?}");
    let m = dash.get("/metrics").body;
    assert!(m.contains("mpicr_jobs_running 0\n"), "{m}");
    assert!(
        m.contains(&format!("mpicr_snapshots{{job=\"{name}\"}} 2\n")),
        "{m}"
    );
    assert!(
        m.contains("mpicr_dashboard_checkpoints_committed_total 2\n"),
        "{m}"
    );
    // The snapshots of a job that ended are still listed.
    assert_eq!(
        dash.get("/api/snapshots").json().as_array().map(Vec::len),
        Some(2)
    );

    // Restart from a snapshot: malformed requests first.
    for body in [
        "",
        "{",
        "[]",
        "{}",
        r#"{"snapshot": 2}"#,
        r#"{"snapshot": "a", "b": 1}"#,
    ] {
        let reply = dash.post("/api/restart", body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(
            reply.error().starts_with("the body must be a JSON object"),
            "{reply:?}"
        );
    }
    for body in [
        r#"{"snapshot": "../x"}"#,
        r#"{"snapshot": "/etc"}"#,
        r#"{"snapshot": ""}"#,
    ] {
        let reply = dash.post("/api/restart", body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(
            reply.error().contains("is not a snapshot name"),
            "{reply:?}"
        );
    }
    let reply = dash.post("/api/restart", &" ".repeat(5000));
    assert_eq!(reply.status, 413, "{reply:?}");
    let reply = dash.request("GET", "/api/restart", Some(&dash.token), "");
    assert_eq!(reply.status, 405, "{reply:?}");
    let reply = dash.request("POST", "/api/restart", None, r#"{"snapshot": "x.1"}"#);
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = dash.post("/api/restart", &format!(r#"{{"snapshot": "{name}.9"}}"#));
    assert_eq!(reply.status, 404, "{reply:?}");
    assert!(reply.error().contains("no committed snapshot"), "{reply:?}");
    // A dashboard of another job does not see this job's snapshots.
    let reply = other.post("/api/restart", &format!(r#"{{"snapshot": "{name}.2"}}"#));
    assert_eq!(reply.status, 404, "{reply:?}");

    // The restart runs `mpicr restart`: the job is back, from epoch 2, under its name.
    let reply = dash.post("/api/restart", &format!(r#"{{"snapshot": "{name}.2"}}"#));
    assert_eq!(reply.status, 200, "{reply:?}");
    let restarted = reply.json();
    let pid = restarted["launcher_pid"].as_u64().expect("a pid") as u32;
    sandbox.adopt(pid);
    assert_eq!(restarted["job"], name.as_str(), "{restarted}");
    assert_eq!(restarted["snapshot"], format!("{name}.2"), "{restarted}");
    let job = wait_for_job(&dash, &name, 2);
    assert_eq!(job["launcher_pid"], pid, "{job}");
    // Not twice while it runs.
    let reply = dash.post("/api/restart", &format!(r#"{{"snapshot": "{name}"}}"#));
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(reply.error().contains("is running"), "{reply:?}");
    let overview = dash.get("/api/overview").json();
    assert_eq!(overview["restarts"][0]["launcher_pid"], pid, "{overview}");
    assert_eq!(overview["restarts"][0]["ended"], Value::Null, "{overview}");
    assert!(
        dash.get("/metrics")
            .body
            .contains("mpicr_dashboard_restarts_total 1\n")
    );
    // Its checkpoints continue the epochs; checkpoint and terminate ends it with status 0.
    let done = dash.post(&checkpoint, r#"{"terminate": true}"#);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json()["name"], format!("{name}.3"));
    wait_until("the restart to end", Duration::from_secs(30), || {
        dash.get("/api/overview").json()["restarts"][0]["ended"] != Value::Null
    });
    let overview = dash.get("/api/overview").json();
    assert_eq!(
        overview["restarts"][0]["ended"], "exit status: 0",
        "{overview}"
    );
    let log = overview["restarts"][0]["log"].as_str().expect("a log");
    let log = std::fs::read_to_string(log).expect("the restart's log");
    assert!(
        log.contains(&format!("restarting job {name} from snapshot {name}.2")),
        "{log}"
    );
}

/// `mpicr run --dashboard 127.0.0.1:0`: the URL on stderr, the page and API of this job only,
/// no restarts (this dashboard ends with the job), and the server gone when the job ends.
#[test]
fn run_serves_the_dashboard_of_its_job() {
    let sandbox = Sandbox::new();
    let name = job_name("rundash");
    let (launcher, dash, stderr) = sandbox.start_job_with_dashboard(&name, 2, 3000, &[]);
    assert_eq!(dash.token.len(), 64, "{dash:?}");
    assert_ne!(dash.port, 0);
    for path in ["/", "/api/jobs", "/metrics"] {
        assert_eq!(dash.request("GET", path, None, "").status, 401, "{path}");
    }
    let page = dash.request("GET", &format!("/?token={}", dash.token), None, "");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("<title>mpicr dashboard</title>"));
    let job = wait_for_job(&dash, &name, 2);
    assert_eq!(job["launcher_pid"], launcher, "{job}");
    // Another job of the same user is not this dashboard's.
    let other = job_name("rundash-other");
    sandbox.start_job(&other, 1, 3000);
    let plain = sandbox.start_dashboard(&[]);
    wait_for_job(&plain, &other, 1);
    let jobs = dash.get("/api/jobs").json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["job"], name.as_str());
    assert_eq!(
        dash.get(&format!("/api/job/{other}")).status,
        404,
        "not this dashboard's job"
    );
    assert_eq!(dash.get("/api/overview").json()["restart"], false);

    let checkpoint = format!("/api/job/{name}/checkpoint");
    let done = dash.post(&checkpoint, "{}");
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json()["name"], format!("{name}.1"));
    assert!(done.json()["duration_ms"].is_u64(), "{done:?}");
    let reply = dash.post("/api/restart", &format!(r#"{{"snapshot": "{name}.1"}}"#));
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(
        reply.error().contains("belongs to one `mpicr run`"),
        "{reply:?}"
    );

    // The job ends (checkpoint and terminate from its own page); so does its dashboard.
    let done = dash.post(&checkpoint, r#"{"terminate": true}"#);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        sandbox.wait_exit(launcher, Duration::from_secs(30)),
        Some(0)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", dash.port)).is_err(),
        "the dashboard stopped with the job"
    );
    let text = stderr.lock().expect("stderr").clone();
    assert!(
        text.contains(&format!("job {name} ended after checkpoint {name}.2")),
        "{text}"
    );
}

/// A bad or busy `--dashboard` address is refused before anything is started.
#[test]
fn run_refuses_a_bad_dashboard_address() {
    let sandbox = Sandbox::new();
    let marker = sandbox.dir.path().join("started");
    let run = |addr: &str| {
        sandbox
            .command("mpicr")
            .args(["run", "--dashboard", addr, "-n", "1", "--", "touch"])
            .arg(&marker)
            .output()
            .expect("mpicr run")
    };
    let out = run("localhost-ish");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--dashboard") && text.contains("localhost-ish"),
        "{text}"
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = busy.local_addr().expect("its address").to_string();
    let out = run(&addr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("cannot listen on {addr}"))
            && text.contains("the job was not started"),
        "{text}"
    );
    assert!(!marker.exists(), "no rank ran");
    // The same command with a free port runs the job.
    let out = run("127.0.0.1:0");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(marker.exists());
}

/// A job that does not take part in checkpoints: the refusal is the job's own sentence, with
/// 409, and counts as a failed checkpoint.
#[test]
fn refused_checkpoint() {
    let sandbox = Sandbox::new();
    let name = job_name("refused");
    let mut c = sandbox.command("mpicr");
    c.args(["run", "--job-name", &name, "-n", "1", "--", "sleep", "60"])
        .stdout(std::process::Stdio::null());
    sandbox.keep(c.spawn().expect("mpicr run starts"), true);
    let dash = sandbox.start_dashboard(&[]);
    wait_until("the job to be listed", Duration::from_secs(30), || {
        dash.get(&format!("/api/job/{name}")).status == 200
    });
    let reply = dash.post(&format!("/api/job/{name}/checkpoint"), "{}");
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(!reply.error().is_empty());
    let m = dash.get("/metrics").body;
    assert!(
        m.contains("mpicr_dashboard_checkpoints_failed_total 1\n"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "mpicr_ranks{{job=\"{name}\",state=\"spawned\"}} 1\n"
        )),
        "{m}"
    );
}

/// `mpicr run --max-restarts 1 --dashboard`: a killed rank, the recovery from the snapshot
/// taken through the page, its cause and duration in the job's JSON and the metrics; the
/// dashboard serves on through the recovery.
#[test]
fn failures_and_recoveries_are_shown() {
    let sandbox = Sandbox::new();
    let name = job_name("recover");
    let (launcher, dash, stderr) =
        sandbox.start_job_with_dashboard(&name, 2, 3000, &["--max-restarts", "1"]);
    let job = wait_for_job(&dash, &name, 2);
    assert_eq!(job["recoveries"], serde_json::json!([]), "{job}");
    let checkpoint = format!("/api/job/{name}/checkpoint");
    let done = dash.post(&checkpoint, "{}");
    assert_eq!(done.status, 200, "{done:?}");
    let victim = job["ranks"][1]["pid"].as_u64().expect("a pid") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim).expect("a pid"),
        rustix::process::Signal::KILL,
    )
    .expect("the rank is killed");

    let mut job = Value::Null;
    wait_until("the recovery to finish", Duration::from_secs(60), || {
        let reply = dash.get(&format!("/api/job/{name}"));
        if reply.status != 200 {
            return false;
        }
        job = reply.json();
        job["recoveries"][0]["recovered_ms"].is_u64()
    });
    let recovery = &job["recoveries"][0];
    let failure = recovery["failure"].as_str().expect("a cause");
    assert!(
        failure.starts_with(&format!("rank 1 (pid {victim}) ")),
        "{recovery}"
    );
    assert_eq!(recovery["snapshot"], format!("{name}.1"), "{recovery}");
    assert_eq!(job["launcher_pid"], launcher, "the same mpicr run");
    let m = dash.get("/metrics").body;
    for line in [
        format!("mpicr_recoveries{{job=\"{name}\"}} 1\n"),
        format!("mpicr_recovery_duration_seconds_count{{job=\"{name}\"}} 1\n"),
    ] {
        assert!(m.contains(&line), "{line} in {m}");
    }
    let overview = dash.get("/api/overview").json();
    assert_eq!(
        overview["jobs"][0]["recoveries"][0], *recovery,
        "{overview}"
    );

    let done = dash.post(&checkpoint, r#"{"terminate": true}"#);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        sandbox.wait_exit(launcher, Duration::from_secs(30)),
        Some(0)
    );
    let text = stderr.lock().expect("stderr").clone();
    assert!(
        text.contains(&format!("recovering job {name} from snapshot {name}.1")),
        "{text}"
    );
}
