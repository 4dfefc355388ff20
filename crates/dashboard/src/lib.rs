//! The operator's web dashboard of mpicr (`mpicr dashboard`).
//!
//! The dashboard is a *client* of the running jobs, like `mpicr status` and `mpicr checkpoint`:
//! it lists the user's live jobs through their control sockets (`coord::live_jobs`,
//! `coord::job_status`), reads the checkpoint state each job publishes
//! (`coord::checkpoint_status`), asks for checkpoints with `coord::request_checkpoint`, and
//! reads the snapshot timeline from the store (`store::Store::list`). It serves:
//!
//! - `/`: one page (HTML, CSS and JS built into the binary, no external resources) that shows
//!   every job's process table (with CPU and memory of local ranks from `/proc`), its
//!   checkpoint state, failures and recoveries, the snapshot timeline with a plot of durations
//!   and sizes, the buttons "checkpoint now" and "checkpoint and terminate", and "restart" for
//!   the snapshots of jobs that are not running (which runs `mpicr restart`);
//! - `/api/…`: the JSON behind it (`docs/dashboard.md` lists the endpoints), including
//!   `/api/events`, a server-sent event stream with a new overview every second;
//! - `/metrics`: Prometheus text format.
//!
//! Every request needs the dashboard's token, as `?token=…` or `Authorization: Bearer …`.
#![forbid(unsafe_code)]

mod api;
mod auth;
mod gather;
mod metrics;
mod migrate;
mod procstat;
mod restart;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coord::{JobRef, RuntimeDir};
use thiserror::Error;

pub use auth::{Token, TokenError};

/// What a dashboard serves and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on; port 0 lets the kernel choose.
    pub listen: SocketAddr,
    /// The runtime directory whose jobs are shown.
    pub runtime_dir: RuntimeDir,
    /// Only this job (`mpicr run --dashboard` would pass its own), or every live job.
    pub job: Option<JobRef>,
    /// The snapshot directory read for the timeline, besides each job's own.
    pub snapshot_dir: PathBuf,
    /// The secret every request must carry.
    pub token: Token,
    /// The `mpicr` program that restarts snapshots from the page (`mpicr restart`); `None`
    /// turns restarts off (the dashboard of `mpicr run --dashboard` ends with its job).
    pub restart_program: Option<PathBuf>,
}

/// Why the dashboard could not start or stopped.
#[derive(Debug, Error)]
pub enum DashboardError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the dashboard's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("the dashboard's server failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot start the dashboard's thread")]
    Thread(#[source] std::io::Error),
}

/// What the request handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) sampler: Mutex<procstat::Sampler>,
    pub(crate) counters: metrics::Counters,
    /// Restarts started from the page, newest last.
    pub(crate) restarts: restart::Restarts,
    /// The page, with its style and script inlined.
    pub(crate) page: String,
}

/// A dashboard bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    /// Binds the listening socket (so that a busy port is an error here, before anything is
    /// printed).
    pub fn bind(config: Config) -> Result<Server, DashboardError> {
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| DashboardError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind {
                addr: config.listen,
                source,
            })?;
        let page = include_str!("assets/index.html")
            .replace("/*{{style}}*/", include_str!("assets/style.css"))
            .replace("/*{{script}}*/", include_str!("assets/app.js"));
        let state = Arc::new(State {
            config,
            sampler: Mutex::new(procstat::Sampler::new()),
            counters: metrics::Counters::default(),
            restarts: restart::Restarts::default(),
            page,
        });
        Ok(Server {
            listener,
            addr,
            state,
        })
    }

    /// The address the dashboard listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL with the token: what the user opens.
    pub fn url(&self) -> String {
        format!(
            "http://{}/?token={}",
            self.addr,
            self.state.config.token.as_str()
        )
    }

    /// Serves until the process ends (or the server fails), on a runtime of its own.
    pub fn run(self) -> Result<(), DashboardError> {
        runtime()?.block_on(self.serve(std::future::pending()))
    }

    /// Serves on a thread of its own until the returned handle is dropped: how
    /// `mpicr run --dashboard ADDR` runs it next to the coordinator.
    pub fn spawn(self) -> Result<Running, DashboardError> {
        let runtime = runtime()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                let served = runtime.block_on(self.serve(async move {
                    let _ = stopped.await;
                }));
                // Open event streams and requests still waiting for a job are dropped; a
                // blocking call in progress gets a moment to return.
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
                served
            })
            .map_err(DashboardError::Thread)?;
        Ok(Running {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Serves until `stop` completes.
    async fn serve(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), DashboardError> {
        self.listener
            .set_nonblocking(true)
            .map_err(DashboardError::Serve)?;
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(DashboardError::Serve)?;
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopping.send(true);
        });
        let mut accepting = stopped.clone();
        let mut draining = stopped;
        // Requests in progress when the dashboard stops are answered (the answer to a
        // checkpoint that ended the job of `mpicr run --dashboard`); event streams never end
        // on their own, so that wait is bounded.
        let server =
            axum::serve(listener, api::router(self.state)).with_graceful_shutdown(async move {
                let _ = accepting.wait_for(|s| *s).await;
            });
        tokio::select! {
            served = std::future::IntoFuture::into_future(server) => {
                served.map_err(DashboardError::Serve)
            }
            () = async move {
                let _ = draining.wait_for(|s| *s).await;
                tokio::time::sleep(ANSWER_GRACE).await;
            } => Ok(()),
        }
    }
}

/// How long a stopping dashboard waits for the answers to requests in progress.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a stopping dashboard waits for blocking work in progress.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn runtime() -> Result<tokio::runtime::Runtime, DashboardError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dashboard")
        .enable_all()
        .build()
        .map_err(DashboardError::Runtime)
}

/// A dashboard serving on its own thread; dropping it stops the server and waits for the
/// thread.
#[derive(Debug)]
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), DashboardError>>>,
}

impl Running {
    /// Stops the server and returns how it ended.
    pub fn stop(mut self) -> Result<(), DashboardError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), DashboardError> {
        drop(self.stop.take());
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(served)) => served,
            Some(Err(_)) => Err(DashboardError::Serve(std::io::Error::other(
                "the dashboard's thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
