//! `mpicr snapshots`: the committed global snapshots; the snapshot directory both it and `mpicr
//! gc` (`gc.rs`) use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use coord::error_chain;
use serde_json::{Value, json};
use store::{SnapshotInfo, Store};

use crate::args::SnapshotsArgs;
use crate::status::columns;
use crate::time::format_utc;
use crate::{EXIT_MPICR_ERROR, say};

/// The snapshot directory: `--snapshot-dir`, else `$MPICR_SNAPSHOT_DIR`, else the store's
/// default (`$XDG_STATE_HOME/mpicr/snapshots` or `~/.local/state/mpicr/snapshots`).
pub(crate) fn snapshot_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    let dir = match given {
        Some(dir) => dir.to_owned(),
        None => match std::env::var_os("MPICR_SNAPSHOT_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Store::default_root().map_err(|e| error_chain(&e))?,
        },
    };
    std::path::absolute(&dir).map_err(|e| {
        format!(
            "cannot locate the snapshot directory {}: {e}",
            dir.display()
        )
    })
}

/// Opens the store at the snapshot directory.
pub(crate) fn open_store(given: Option<&Path>) -> Result<Store, String> {
    let dir = snapshot_dir(given)?;
    Store::open(Some(&dir)).map_err(|e| error_chain(&e))
}

pub(crate) fn main(args: &SnapshotsArgs) -> ExitCode {
    let listed = open_store(args.snapshot_dir.as_deref())
        .and_then(|store| store.scan().map_err(|e| error_chain(&e)));
    let snapshots = match listed {
        Ok((list, damaged)) => {
            // Damaged snapshots are not listed (nothing can restart them), but said once each.
            for (path, why) in damaged {
                say(&format!(
                    "skipping the damaged snapshot {}: {}",
                    path.display(),
                    error_chain(&why)
                ));
            }
            list
        }
        Err(line) => {
            say(&line);
            return ExitCode::from(EXIT_MPICR_ERROR);
        }
    };
    let text = if args.json {
        let list: Vec<Value> = snapshots.iter().map(snapshot_json).collect();
        format!("{:#}\n", Value::Array(list))
    } else {
        snapshot_table(&snapshots)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn snapshot_json(s: &SnapshotInfo) -> Value {
    json!({
        "name": s.name,
        "job": s.job,
        "epoch": s.epoch,
        "created": s.created,
        "size": s.size,
        "ranks": s.ranks,
        "checkpointers": s.checkpointers,
        "in_transit_messages": s.in_transit_messages,
        "latest": s.latest,
        "path": s.path,
        "duration_ms": s.duration_ms,
        "stall_bound_ms": s.stall_bound_ms,
        "redundancy": s.redundancy,
    })
}

fn snapshot_table(snapshots: &[SnapshotInfo]) -> String {
    if snapshots.is_empty() {
        return "no snapshots\n".to_owned();
    }
    let rows: Vec<[String; 8]> = snapshots
        .iter()
        .map(|s| {
            let mut kinds = s.checkpointers.clone();
            kinds.sort();
            kinds.dedup();
            [
                s.name.clone(),
                s.job.clone(),
                s.epoch.to_string(),
                format_utc(s.created),
                human_size(s.size),
                s.duration_ms.map_or_else(|| "-".to_owned(), show_ms),
                s.ranks.to_string(),
                kinds.join(","),
            ]
        })
        .collect();
    columns(
        [
            "NAME",
            "JOB",
            "EPOCH",
            "TIME",
            "SIZE",
            "DURATION",
            "RANKS",
            "CHECKPOINTER",
        ],
        &rows,
    )
}

/// A checkpoint's duration: `850 ms`, `2.4 s`.
pub(crate) fn show_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Bytes in B, KiB, MiB or GiB with one decimal.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
        assert_eq!(show_ms(850), "850 ms");
        assert_eq!(show_ms(2400), "2.4 s");
    }
}
