//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver)
//! opens the page that `mpicr run --dashboard` serves for its job, sees every rank, takes a
//! checkpoint with the button and its confirmation, and sees the new snapshot with its
//! duration in the timeline and the plot; without the token the page is refused; restarts a
//! snapshot; and migrates a rank of a job on network-namespace nodes with the rank and node
//! pickers (skipped, with a line on stderr, where namespaces cannot be made: not root). Needs
//! Debian's `chromium` and `chromium-driver` (scripts/install-browser.sh);
//! MPICR_SKIP_BROWSER=1 skips it where no browser can be installed.

mod common;
/// The namespace nodes of the tests of `crates/testapps`, with this crate's sandbox.
mod harness {
    pub(crate) use super::common::Sandbox;
}
#[path = "../../testapps/tests/netns/mod.rs"]
mod netns;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{ClientBuilder, Locator};

/// Screenshots of the page, for a person to look at after a run.
const SHOT_BEFORE: &str = "/tmp/mpicr-dashboard-test.png";
const SHOT_DIALOG: &str = "/tmp/mpicr-dashboard-test-dialog.png";
const SHOT_AFTER: &str = "/tmp/mpicr-dashboard-test-after-checkpoint.png";
const SHOT_MIGRATE: &str = "/tmp/mpicr-dashboard-test-after-migration.png";

/// How often a step retries an element that the page's redraw (every second) replaced
/// between finding it and using it (WebDriver's "stale element reference").
const REDRAWN: usize = 10;

fn stale(e: &fantoccini::error::CmdError) -> bool {
    e.to_string().contains("stale element")
}

/// The text of the element at `css`, found again if a redraw replaced it.
async fn text_of(
    client: &fantoccini::Client,
    css: &str,
) -> Result<String, fantoccini::error::CmdError> {
    let mut tries = 0;
    loop {
        let found = client.find(Locator::Css(css)).await?;
        match found.text().await {
            Err(e) if stale(&e) && tries < REDRAWN => tries += 1,
            done => return done,
        }
    }
}

/// Clicks the element at `css` once it is there (within `limit`), found again if a redraw
/// replaced it.
async fn click_on(
    client: &fantoccini::Client,
    css: &str,
    limit: Duration,
) -> Result<(), fantoccini::error::CmdError> {
    let mut tries = 0;
    loop {
        let found = client
            .wait()
            .at_most(limit)
            .for_element(Locator::Css(css))
            .await?;
        match found.click().await {
            Err(e) if stale(&e) && tries < REDRAWN => tries += 1,
            done => return done,
        }
    }
}

/// Clicks the button at `css` (there within `limit`) and returns the question of the
/// confirmation dialog it opens.
async fn ask(
    client: &fantoccini::Client,
    css: &str,
    limit: Duration,
) -> Result<String, fantoccini::error::CmdError> {
    click_on(client, css, limit).await?;
    client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("dialog#confirm[open]"))
        .await?
        .text()
        .await
}

fn in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Ends chromedriver and every browser process it started (one process group).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(self.0.id());
        let _ = self.0.wait();
    }
}

/// One browser at a time: the tests share two cores with everything else.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium session through chromedriver; `None` when MPICR_SKIP_BROWSER=1.
struct Browser {
    client: fantoccini::Client,
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Option<Browser> {
        if std::env::var_os("MPICR_SKIP_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("MPICR_SKIP_BROWSER=1: the dashboard's browser test is skipped");
            return None;
        }
        let (Some(chromium), Some(chromedriver)) = (in_path("chromium"), in_path("chromedriver"))
        else {
            panic!(
                "the dashboard's browser test needs Debian's `chromium` and `chromium-driver`: \
                 run scripts/install-browser.sh (as root), or set MPICR_SKIP_BROWSER=1 to skip \
                 this test"
            );
        };
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let driver = Driver(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display())),
        );
        wait_until("chromedriver to listen", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not start a browser session: {e}"));
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Closes the session and ends the driver, then fails the test with `result`'s error.
    async fn finish(self, result: Result<(), fantoccini::error::CmdError>) {
        let _ = self.client.close().await;
        drop(self.driver);
        if let Err(e) = result {
            panic!("the browser test failed: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_from_the_page() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = &browser.client;

    let sandbox = Sandbox::new();
    let name = job_name("browser");
    let (_launcher, dash, _stderr) = sandbox.start_job_with_dashboard(&name, 2, 3000, &[]);
    wait_until("the job's ranks to run", Duration::from_secs(60), || {
        let reply = dash.get(&format!("/api/job/{name}"));
        reply.status == 200
            && reply.json()["ranks"]
                .as_array()
                .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["state"] == "running"))
    });

    let result = async {
        // The page with the token: both ranks appear, with their pids.
        client.goto(&dash.url).await?;
        let section = format!("section.job[data-job=\"{name}\"]");
        for rank in 0..2 {
            client
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&format!("{section} tr[data-rank=\"{rank}\"]")))
                .await?;
        }
        let table = client
            .find(Locator::Css(&format!("{section} table.procs")))
            .await?
            .text()
            .await?;
        let job = dash.get(&format!("/api/job/{name}")).json();
        for rank in job["ranks"].as_array().expect("ranks") {
            let pid = rank["pid"].to_string();
            assert!(table.contains(&pid), "pid {pid} in the table: {table}");
        }
        assert!(table.contains("running"), "{table}");
        let timeline = client
            .find(Locator::Css(&format!("{section} table.timeline")))
            .await?
            .text()
            .await?;
        assert!(timeline.contains("no snapshots yet"), "{timeline}");
        // CPU shares need a second sample.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        std::fs::write(SHOT_BEFORE, client.screenshot().await?).expect("a screenshot");

        // Checkpoint now, confirmed in the dialog.
        client
            .find(Locator::Css(&format!("{section} button.ckpt-now")))
            .await?
            .click()
            .await?;
        let dialog = client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css("dialog#confirm[open]"))
            .await?;
        let question = dialog.text().await?;
        assert!(question.contains(&name), "{question}");
        std::fs::write(SHOT_DIALOG, client.screenshot().await?).expect("a screenshot");
        client
            .find(Locator::Css("#confirm-yes"))
            .await?
            .click()
            .await?;
        let snapshot = format!("{name}.1");
        client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css(&format!(
                "{section} table.timeline tr[data-snapshot=\"{snapshot}\"]"
            )))
            .await?;
        let result = client
            .find(Locator::Css(&format!("{section} .result")))
            .await?
            .text()
            .await?;
        assert!(
            result.contains(&format!("checkpoint {snapshot} committed in ")),
            "{result}"
        );
        // The duration the coordinator recorded, in the timeline and in the plot.
        let recorded = dash.get("/api/snapshots").json()[0]["duration_ms"]
            .as_u64()
            .expect("a recorded duration");
        let shown = if recorded < 1000 {
            format!("{recorded} ms")
        } else {
            format!("{:.1} s", recorded as f64 / 1000.0)
        };
        let cell = text_of(
            client,
            &format!("{section} table.timeline tr[data-snapshot=\"{snapshot}\"] td.duration"),
        )
        .await?;
        assert_eq!(cell, shown);
        assert!(result.contains(&shown), "{result}");
        // Parts in the snapshot directory, no copies elsewhere.
        let redundancy = text_of(
            client,
            &format!("{section} table.timeline tr[data-snapshot=\"{snapshot}\"] td.redundancy"),
        )
        .await?;
        assert_eq!(redundancy, "none");
        // A job on one machine cannot migrate: no control for it.
        let controls = client
            .find_all(Locator::Css(&format!("{section} .migrate-control")))
            .await?
            .len();
        assert_eq!(controls, 0, "no migrate control");
        let plot_points = client
            .find_all(Locator::Css(&format!("{section} svg.plot circle")))
            .await?
            .len();
        assert_eq!(plot_points, 1);
        let plot_bars = client
            .find_all(Locator::Css(&format!("{section} svg.plot rect.bar")))
            .await?
            .len();
        assert_eq!(plot_bars, 1, "a duration bar");
        std::fs::write(SHOT_AFTER, client.screenshot().await?).expect("a screenshot");

        // The same page without the token is refused.
        let bare = dash.url.split('?').next().expect("the URL").to_owned();
        client.goto(&bare).await?;
        let body = client.find(Locator::Css("body")).await?.text().await?;
        assert!(body.contains("needs its token"), "{body}");
        assert_eq!(dash.request("GET", "/", None, "").status, 401);
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    browser.finish(result).await;
}

/// `mpicr dashboard` after a job ended with checkpoint-and-terminate: its snapshot is listed
/// with a "Restart" button; with the confirmation, the job runs again from it and its section
/// comes back with every rank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_the_page() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = &browser.client;

    let sandbox = Sandbox::new();
    let name = job_name("browser-restart");
    let launcher = sandbox.start_job(&name, 2, 3000);
    let dash = sandbox.start_dashboard(&[]);
    wait_until("the job's ranks to run", Duration::from_secs(60), || {
        let reply = dash.get(&format!("/api/job/{name}"));
        reply.status == 200
            && reply.json()["ranks"]
                .as_array()
                .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["state"] == "running"))
    });
    let done = dash.post(
        &format!("/api/job/{name}/checkpoint"),
        r#"{"terminate": true}"#,
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        sandbox.wait_exit(launcher, Duration::from_secs(30)),
        Some(0)
    );
    let snapshot = format!("{name}.1");

    let result = async {
        client.goto(&dash.url).await?;
        let row = format!("#others tr[data-snapshot=\"{snapshot}\"]");
        let question = ask(
            client,
            &format!("{row} button.restart"),
            Duration::from_secs(20),
        )
        .await?;
        assert!(question.contains(&snapshot), "{question}");
        client
            .find(Locator::Css("#confirm-yes"))
            .await?
            .click()
            .await?;
        // The job's section is back with both ranks of the restarted job.
        let section = format!("section.job[data-job=\"{name}\"]");
        for rank in 0..2 {
            client
                .wait()
                .at_most(Duration::from_secs(60))
                .for_element(Locator::Css(&format!("{section} tr[data-rank=\"{rank}\"]")))
                .await?;
        }
        let overview = dash.get("/api/overview").json();
        let pid = overview["restarts"][0]["launcher_pid"]
            .as_u64()
            .expect("the restart's pid");
        // (The result line under the snapshots is hidden with them now that the job runs.)
        let result = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#log li.ok"))
            .await?
            .text()
            .await?;
        assert!(
            result.contains(&format!(
                "snapshot {snapshot} restarted: job {name} runs again"
            )),
            "{result}"
        );
        assert_eq!(overview["jobs"][0]["launcher_pid"], pid, "{overview}");
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    // Whatever happened, the restarted job is ended with the sandbox.
    let overview = dash.get("/api/overview").json();
    for restart in overview["restarts"].as_array().into_iter().flatten() {
        if let Some(pid) = restart["launcher_pid"].as_u64() {
            sandbox.adopt(pid as u32);
        }
    }
    browser.finish(result).await;
}

/// A `--crs image` job on 3 namespace nodes (ranks 0-1, 2, 3): rank 3 is moved to node 1 with
/// the page's pickers, "Migrate" and its confirmation; the result line, the process table and
/// the migrations table show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_from_the_page() {
    let Some((_guard, cluster, sandbox)) = netns::setup(3) else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = &browser.client;
    let name = job_name("browser-migrate");
    let ring = bin("mpicr-migrate-ring").display().to_string();
    let args = netns::job_args(
        &sandbox,
        &cluster,
        &name,
        &["-n", "4", "--crs", "image", "--", &ring, "3000", "10"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_launcher, dash, _stderr) = sandbox.start_with_dashboard(&name, &args);
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    wait_until("the job's ranks to run", Duration::from_secs(60), || {
        let reply = dash.get(&format!("/api/job/{name}"));
        reply.status == 200
            && reply.json()["ranks"]
                .as_array()
                .is_some_and(|r| r.len() == 4 && r.iter().all(|r| r["state"] == "running"))
    });

    let result = async {
        client.goto(&dash.url).await?;
        let section = format!("section.job[data-job=\"{name}\"]");
        let control = format!("{section} .migrate-control");
        client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&format!(
                "{control} select.migrate-node option[value=\"{}\"]",
                nodes[0]
            )))
            .await?;
        client
            .find(Locator::Css(&format!("{control} select.migrate-rank")))
            .await?
            .select_by_value("3")
            .await?;
        client
            .find(Locator::Css(&format!("{control} select.migrate-node")))
            .await?
            .select_by_value(&nodes[0])
            .await?;
        let question = ask(
            client,
            &format!("{control} button.migrate"),
            Duration::from_secs(5),
        )
        .await?;
        assert!(
            question.contains(&format!(
                "Move rank 3 of job {name} from node {} to node {}?",
                nodes[2], nodes[0]
            )),
            "{question}"
        );
        client
            .find(Locator::Css("#confirm-yes"))
            .await?
            .click()
            .await?;
        let said = client
            .wait()
            .at_most(Duration::from_secs(120))
            .for_element(Locator::Css(&format!("{section} .result.ok")))
            .await?
            .text()
            .await?;
        assert!(
            said.starts_with(&format!(
                "rank 3 moved from {} to {} in ",
                nodes[2], nodes[0]
            )),
            "{said}"
        );
        let node_cell = format!("{section} table.procs tr[data-rank=\"3\"] td:nth-child(2)");
        let mut shown = String::new();
        for _ in 0..100 {
            shown = text_of(client, &node_cell).await?;
            if shown == nodes[0] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(shown, nodes[0], "the process table shows rank 3's new node");
        let option = text_of(
            client,
            &format!("{control} select.migrate-rank option[value=\"3\"]"),
        )
        .await?;
        assert_eq!(
            option,
            format!("3 ({})", nodes[0]),
            "the rank picker follows"
        );
        let row = format!("{section} table.migrations tr.done");
        let from = text_of(client, &format!("{row} td:nth-child(2)")).await?;
        let to = text_of(client, &format!("{row} td:nth-child(3)")).await?;
        assert_eq!((from, to), (nodes[2].clone(), nodes[0].clone()));
        std::fs::write(SHOT_MIGRATE, client.screenshot().await?).expect("a screenshot");
        Ok(())
    }
    .await;
    browser.finish(result).await;
}
