//! The dashboard of a job on namespace nodes (`netns`), through its API: a rank migrated with
//! `POST /api/job/JOB/migrate` (refusals first, one while another migration runs, then the
//! job's result is the uninterrupted run's), and a snapshot whose parts are mirrored shows its
//! redundancy in the timeline and the bytes copied in `/metrics`. Nothing is left behind.
//! Skipped (with a line on stderr) where namespaces cannot be made (not root).

mod harness;
#[path = "../../dashboard/tests/common/http.rs"]
mod http;
mod netns;

use std::time::{Duration, Instant};

use harness::{Job, Sandbox, leftovers, placement, result_line, strs};
use http::Dashboard;
use netns::{Cluster, job_args, setup, signal};
use serde_json::{Value, json};

/// Starts `mpicr run --job-name NAME --dashboard 127.0.0.1:0 ARGS` on the cluster and returns
/// it with the dashboard whose URL it printed.
fn start_with_dashboard(
    sandbox: &Sandbox,
    cluster: &Cluster,
    name: &str,
    rest: &[&str],
) -> (Job, Dashboard) {
    let mut all = vec!["--dashboard", "127.0.0.1:0"];
    all.extend_from_slice(rest);
    let args = job_args(sandbox, cluster, name, &all);
    let job = sandbox.start_job(name, &strs(&args));
    let prefix = format!("mpicr: dashboard of job {name}: ");
    let start = Instant::now();
    let url = loop {
        if let Some(url) = job.stderr().lines().find_map(|l| l.strip_prefix(&prefix)) {
            break url.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no dashboard URL: {}",
            job.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (job, Dashboard::from_url(&url))
}

/// One line of the metrics text, which must be there.
fn metric(dash: &Dashboard, line: &str) {
    let text = dash.get("/metrics").body;
    assert!(text.contains(line), "no `{line}` in the metrics:\n{text}");
}

/// Waits (up to 30 s: the cluster's daemons send a heartbeat every 5 s) until every rank of
/// job `name` runs and shows a positive resident memory and a CPU time in the dashboard's JSON
/// of the job; ranks on namespace nodes are not local, so the numbers are those their daemons
/// reported. `mpicr status --json` shows the same reports.
fn every_rank_shows_its_usage(sandbox: &Sandbox, dash: &Dashboard, name: &str) {
    let start = Instant::now();
    loop {
        let shown = dash.get(&format!("/api/job/{name}")).json();
        let ranks = shown["ranks"].as_array().expect("ranks").clone();
        let reported = |r: &Value| {
            r["state"] == "running"
                && r["rss_bytes"].as_u64().is_some_and(|b| b > 0)
                && r["cpu_seconds"].as_f64().is_some()
        };
        if !ranks.is_empty() && ranks.iter().all(reported) {
            assert!(
                ranks.iter().all(|r| r["local"] == false),
                "ranks on namespace nodes are not local: {shown}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not every rank shows its usage: {shown}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = sandbox.mpicr(&["status", name, "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let ranks = status["ranks"].as_array().expect("ranks");
    assert!(
        ranks
            .iter()
            .all(|r| r["rss_bytes"].as_u64().is_some_and(|b| b > 0)),
        "{status}"
    );
}

fn refused(dash: &Dashboard, path: &str, body: &str, status: u16, says: &str) {
    let reply = dash.post(path, body);
    assert_eq!(reply.status, status, "{body}: {reply:?}");
    assert!(
        reply.error().contains(says),
        "{body}: the refusal does not say `{says}`: {reply:?}"
    );
}

/// Rank 3 of a 4-rank image job on 3 nodes (ranks 0-1, 2, 3) moves to node 1 through the
/// dashboard; bad requests are refused with 400 and a second migration while one runs with
/// 409; the job's JSON, its placement and the metrics show the migration; the result is the
/// uninterrupted run's.
#[test]
fn a_rank_migrates_through_the_dashboard() {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let reference = sandbox.mpicr(&["run", "-n", "4", "--", "migrate-ring", "600", "10"]);
    let expected = result_line(&reference);
    let name = "dashmig";
    let (job, dash) = start_with_dashboard(
        &sandbox,
        &cluster,
        name,
        &[
            "-n",
            "4",
            "--crs",
            "image",
            "--",
            "migrate-ring",
            "600",
            "10",
        ],
    );
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let before = placement(&sandbox, name);
    assert_eq!(before[3], nodes[2], "{before:?}");
    job.wait_for_lines(5);

    let shown = dash.get(&format!("/api/job/{name}")).json();
    assert_eq!(
        shown["actions"],
        json!(["checkpoint", "terminate", "migrate"]),
        "{shown}"
    );
    assert_eq!(shown["nodes"], json!(nodes), "{shown}");
    assert_eq!(shown["migrations"]["done"], 0, "{shown}");

    let path = format!("/api/job/{name}/migrate");
    refused(&dash, &path, "{}", 400, "the body must be a JSON object");
    refused(
        &dash,
        &path,
        &json!({"rank": 9, "node": nodes[0]}).to_string(),
        400,
        "job dashmig has no rank 9 (it has 4)",
    );
    refused(
        &dash,
        &path,
        &json!({"rank": 3, "node": "nowhere"}).to_string(),
        400,
        "node nowhere is not a node of job dashmig",
    );
    refused(
        &dash,
        &path,
        &json!({"rank": 3, "node": nodes[2]}).to_string(),
        400,
        &format!("rank 3 is already on node {}", nodes[2]),
    );

    // A migration that cannot complete while node 2's daemon is stopped; meanwhile another
    // one is refused by the job (409, its own sentence).
    let target = cluster.daemon_pid(2);
    signal(target, rustix::process::Signal::STOP);
    let first = {
        let dash = dash.clone();
        let body = json!({"rank": 3, "node": nodes[1]}).to_string();
        let path = path.clone();
        std::thread::spawn(move || dash.post(&path, &body))
    };
    // Once the job has the request (asked on the command line for the node rank 3 is on, which
    // can never start a migration itself)...
    let start = Instant::now();
    while !sandbox
        .mpicr(&["migrate", name, "--rank", "3", "--to", &nodes[2]])
        .stderr
        .contains("rank 3 is already migrating")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first request never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...the dashboard's second one is the job's refusal.
    refused(
        &dash,
        &path,
        &json!({"rank": 1, "node": nodes[2]}).to_string(),
        409,
        "rank 3 is migrating (to node",
    );
    signal(target, rustix::process::Signal::CONT);
    let done = first.join().expect("the first request");
    assert_eq!(done.status, 200, "{done:?}");
    let done = done.json();
    assert_eq!(done["rank"], 3, "{done}");
    assert_eq!(done["from"], nodes[2].as_str(), "{done}");
    assert_eq!(done["to"], nodes[1].as_str(), "{done}");
    let bytes = done["bytes"].as_u64().expect("the image's size");
    assert!(bytes > 0, "{done}");
    assert!(done["total_us"].as_u64().is_some_and(|t| t > 0), "{done}");
    let now = placement(&sandbox, name);
    assert_eq!(now[3], nodes[1], "{now:?}");
    assert_eq!(now[..3], before[..3], "the other ranks stayed");

    let shown = dash.get(&format!("/api/job/{name}")).json();
    let migrations = &shown["migrations"];
    assert_eq!(migrations["done"], 1, "{shown}");
    assert_eq!(migrations["failed"], 0, "{shown}");
    assert_eq!(
        migrations["recent"][0],
        json!({
            "rank": 3,
            "from": nodes[2],
            "to": nodes[1],
            "total_us": done["total_us"],
            "transfer_us": done["transfer_us"],
            "bytes": bytes,
        }),
        "{shown}"
    );
    assert_eq!(shown["ranks"][3]["node"], nodes[1].as_str(), "{shown}");
    metric(
        &dash,
        &format!("mpicr_migrations_total{{job=\"{name}\"}} 1\n"),
    );
    metric(
        &dash,
        &format!("mpicr_migrations_failed_total{{job=\"{name}\"}} 0\n"),
    );
    metric(
        &dash,
        &format!("mpicr_migrated_bytes_total{{job=\"{name}\"}} {bytes}\n"),
    );
    metric(
        &dash,
        &format!("mpicr_migration_duration_seconds_count{{job=\"{name}\"}} 1\n"),
    );
    metric(
        &dash,
        &format!(
            "mpicr_migration_duration_seconds_sum{{job=\"{name}\"}} {}\n",
            done["total_us"].as_u64().expect("a time") as f64 / 1e6
        ),
    );

    let out = job.finish();
    assert_eq!(result_line(&out), expected, "the migrated run's result");
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}

/// A `self` job on 3 nodes with `--storage` and `--mirror 1`: every rank shows the CPU time
/// and memory its node daemon reported; a checkpoint through the dashboard is shown as
/// mirrored once and complete, `/metrics` counts the bytes copied (each
/// part once, as the manifest's holders say), and the job offers no migration (it does not
/// use the `image` checkpointer).
#[test]
fn a_mirrored_snapshot_shows_its_redundancy_and_the_bytes_copied() {
    let Some((_guard, cluster, sandbox)) = setup(3) else {
        return;
    };
    let name = "dashmirror";
    let storage = sandbox.dir().join("store-{node}").display().to_string();
    let (job, dash) = start_with_dashboard(
        &sandbox,
        &cluster,
        name,
        &[
            "--storage",
            &storage,
            "--mirror",
            "1",
            "--crs",
            "self",
            "-n",
            "6",
            "--",
            "ckpt-ring",
            "3000",
            "20",
        ],
    );
    placement(&sandbox, name);
    every_rank_shows_its_usage(&sandbox, &dash, name);
    let shown = dash.get(&format!("/api/job/{name}")).json();
    assert_eq!(
        shown["actions"],
        json!(["checkpoint", "terminate"]),
        "{shown}"
    );
    metric(
        &dash,
        &format!("mpicr_mirrored_bytes_total{{job=\"{name}\"}} 0\n"),
    );

    let done = dash.post(&format!("/api/job/{name}/checkpoint"), "{}");
    assert_eq!(done.status, 200, "{done:?}");
    let snapshot = done.json()["name"].as_str().expect("a name").to_owned();
    let shown = dash.get(&format!("/api/job/{name}")).json();
    let listed: Vec<&Value> = shown["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter(|s| s["name"] == snapshot.as_str())
        .collect();
    assert_eq!(
        listed[0]["redundancy"],
        json!({"kind": "mirror", "copies": 1, "complete": true}),
        "{shown}"
    );
    let store = store::Store::open(Some(&sandbox.snapshots())).expect("the snapshot directory");
    let manifest = store
        .resolve(&snapshot)
        .expect("the snapshot")
        .manifest()
        .clone();
    let copied: u64 = manifest
        .parts
        .iter()
        .map(|p| p.size * (p.nodes.len() as u64 - 1))
        .sum();
    assert!(copied > 0, "{manifest:?}");
    metric(
        &dash,
        &format!("mpicr_mirrored_bytes_total{{job=\"{name}\"}} {copied}\n"),
    );
    metric(
        &dash,
        &format!("mpicr_parity_bytes_total{{job=\"{name}\"}} 0\n"),
    );

    let done = dash.post(
        &format!("/api/job/{name}/checkpoint"),
        r#"{"terminate": true}"#,
    );
    assert_eq!(done.status, 200, "{done:?}");
    let out = job.finish();
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(leftovers(&sandbox).is_empty(), "processes left behind");
}
