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
    let snapshots = dash.get("/api/snapshots").json();
    assert_eq!(snapshots[0]["name"], format!("{name}.1"), "{snapshots}");
    assert_eq!(snapshots[0]["ranks"], 2);
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
        "# TYPE mpicr_snapshot_bytes gauge\n".to_owned(),
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
