//! Records of removed snapshots whose parts are still in node stores.
//!
//! `mpicr gc` outside a running job removes a snapshot from this store first (its directory is
//! renamed out of its committed name: it cannot be restarted from then on) and then asks every
//! node to remove its copies. The manifest, which names those nodes, stays in
//! `<job>/.nodes-<epoch>-<pid>/` until every node has answered, so a node that was not reachable
//! is tried again by the next gc, and a crash between the two steps loses nothing.

use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::names;
use crate::store::{NODES_PREFIX, Store, entries, remove_tree};

/// A removed snapshot's manifest, kept until its copies in node stores are gone.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    path: PathBuf,
    manifest: Manifest,
}

impl NodeRecord {
    /// The record's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The removed snapshot's manifest: its job, epoch, the nodes of its parts and how they
    /// are reached (`extra`).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Removes the record once the snapshot's node copies are gone.
    pub fn forget(self) -> Result<(), StoreError> {
        remove_tree(&self.path)
    }
}

/// Node records that read, and those that do not, with the reason.
pub type NodeRecords = (Vec<NodeRecord>, Vec<(PathBuf, StoreError)>);

impl Store {
    /// The node records of `job` (of every job if `None`), oldest epoch first.
    pub fn node_records(&self, job: Option<&str>) -> Result<NodeRecords, StoreError> {
        let jobs = match job {
            Some(job) => {
                names::check_job(job)?;
                vec![job.to_owned()]
            }
            None => self.jobs()?,
        };
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for job in jobs {
            let dir = self.job_dir(&job);
            if !dir.is_dir() {
                continue;
            }
            for name in entries(&dir)? {
                if !name.starts_with(NODES_PREFIX) {
                    continue;
                }
                let path = dir.join(&name);
                let read = Manifest::read(&path.join(MANIFEST_FILE)).and_then(|manifest| {
                    if manifest.job == job {
                        Ok(manifest)
                    } else {
                        Err(StoreError::Foreign {
                            path: path.clone(),
                            expected: format!("job {job}"),
                            found: format!("job {}", manifest.job),
                        })
                    }
                });
                match read {
                    Ok(manifest) => good.push(NodeRecord { path, manifest }),
                    Err(e) => bad.push((path, e)),
                }
            }
        }
        good.sort_by(|a, b| {
            (&a.manifest.job, a.manifest.epoch).cmp(&(&b.manifest.job, b.manifest.epoch))
        });
        Ok((good, bad))
    }
}
