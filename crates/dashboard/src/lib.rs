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
//!   checkpoint state and recoveries, the snapshot timeline with a plot of sizes, and the
//!   buttons "checkpoint now" and "checkpoint and terminate";
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
mod procstat;

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
}

/// What the request handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) sampler: Mutex<procstat::Sampler>,
    pub(crate) counters: metrics::Counters,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dashboard")
            .enable_all()
            .build()
            .map_err(DashboardError::Runtime)?;
        runtime.block_on(self.serve())
    }

    /// Serves on a thread of its own: how `mpicr run --dashboard ADDR` can run it next to
    /// the coordinator.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<Result<(), DashboardError>>> {
        std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || self.run())
    }

    async fn serve(self) -> Result<(), DashboardError> {
        self.listener
            .set_nonblocking(true)
            .map_err(DashboardError::Serve)?;
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(DashboardError::Serve)?;
        axum::serve(listener, api::router(self.state))
            .await
            .map_err(DashboardError::Serve)
    }
}
