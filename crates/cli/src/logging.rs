//! Diagnostics on stderr through `tracing`, filtered by `MPICR_LOG` (default: warnings).

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = match std::env::var("MPICR_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            crate::say(&format!("ignoring MPICR_LOG={spec}: {e}"));
            EnvFilter::new("warn")
        }),
        Err(_) => EnvFilter::new("warn"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
