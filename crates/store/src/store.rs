//! The snapshot root: writing (begin, commit), finding (list, resolve) and removing (gc) global
//! snapshots.
//!
//! ```text
//! <root>/                                0700, owned by the user
//!   <job>/                               0700
//!     .lock                              flock serializing begin, the commit point and gc
//!     latest -> <epoch>                  symlink to the newest committed snapshot
//!     <epoch>/                           0700, a committed snapshot
//!       manifest                         0600
//!       rank-<r>.part                    0600
//!     .staging-<epoch>-<pid>/            a snapshot being written (flock held by its writer)
//!     .trash-<name>-<pid>/               a directory being removed
//!     .nodes-<epoch>-<pid>/              a removed snapshot's manifest, kept until its copies
//!                                        in node stores are removed too (`node_records.rs`)
//! ```

use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::commit::CommitStep;
use crate::error::StoreError;
use crate::fsutil::{Lock, create_private_dir, rename_noreplace, sync_dir};
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestInput};
use crate::names;
use crate::part::{PartReader, PartWriter, check_written};
use crate::redundancy::Redundancy;

const STAGING_PREFIX: &str = ".staging-";
const TRASH_PREFIX: &str = ".trash-";
pub(crate) const NODES_PREFIX: &str = ".nodes-";
const LATEST: &str = "latest";
const LATEST_TMP_PREFIX: &str = ".latest.tmp-";
const LOCK_FILE: &str = ".lock";
const MANIFEST_TMP: &str = "manifest.tmp";

/// The manifest's `extra` key of a checkpoint's duration, request to commit, in milliseconds.
pub const EXTRA_DURATION_MS: &str = "duration_ms";
/// The manifest's `extra` key of the upper bound of a rank's stall, in milliseconds.
pub const EXTRA_STALL_BOUND_MS: &str = "stall_bound_ms";

/// The root directory holding every job's snapshots (`--snapshot-dir`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One committed snapshot as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub job: String,
    pub epoch: u64,
    /// `job.epoch`, what [`Store::resolve`] takes.
    pub name: String,
    /// Commit time, Unix seconds.
    pub created: u64,
    /// Bytes on disk: every file of the snapshot's directory (the manifest, the parts and the
    /// process images written with them; an incremental image counts where it is, its parents
    /// in their own snapshots), plus the parts kept in node stores, as the manifest records
    /// them.
    pub size: u64,
    pub ranks: u32,
    /// The checkpointer of every rank, in rank order.
    pub checkpointers: Vec<String>,
    pub in_transit_messages: u64,
    /// True for the newest committed snapshot of its job.
    pub latest: bool,
    pub path: PathBuf,
    /// Milliseconds from the request to the commit, as the coordinator recorded them in the
    /// manifest (`extra.duration_ms`); `None` in snapshots written before it did.
    pub duration_ms: Option<u64>,
    /// Milliseconds from the first checkpoint message to the ranks until the last part
    /// arrived (`extra.stall_bound_ms`): the longest any rank can have been held; `None` when
    /// not recorded.
    pub stall_bound_ms: Option<u64>,
    /// The copies of the parts on other nodes, as the manifest recorded them at the commit.
    pub redundancy: Redundancy,
}

impl Store {
    /// `$XDG_STATE_HOME/mpicr/snapshots`, or `~/.local/state/mpicr/snapshots`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        match std::env::var_os("XDG_STATE_HOME") {
            Some(d) if !d.is_empty() && Path::new(&d).is_absolute() => {
                Ok(PathBuf::from(d).join("mpicr/snapshots"))
            }
            _ => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => {
                    Ok(PathBuf::from(h).join(".local/state/mpicr/snapshots"))
                }
                _ => Err(StoreError::NoDefaultRoot),
            },
        }
    }

    /// Opens the root (`None`: the default), creating it 0700 if missing. A root that belongs to
    /// another user or is open to group or others is refused.
    pub fn open(root: Option<&Path>) -> Result<Store, StoreError> {
        let root = match root {
            Some(r) => r.to_owned(),
            None => Self::default_root()?,
        };
        let root = std::path::absolute(&root).map_err(StoreError::io("locate", &root))?;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
        {
            Ok(()) => {}
            Err(source) => {
                return Err(StoreError::Io {
                    op: "create the snapshot directory",
                    path: root,
                    source,
                });
            }
        }
        let meta = std::fs::metadata(&root).map_err(StoreError::io("inspect", &root))?;
        if !meta.is_dir() {
            return Err(StoreError::NotDirectory { path: root });
        }
        let uid = rustix::process::getuid().as_raw();
        if meta.uid() != uid {
            return Err(StoreError::RootOwner {
                path: root,
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(StoreError::RootMode { path: root, mode });
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `job`'s snapshots.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.root.join(job)
    }

    /// Starts writing epoch `epoch` of `job` in a fresh staging directory. Refused if the
    /// epoch is already committed or being written.
    pub fn begin(&self, job: &str, epoch: u64) -> Result<Pending, StoreError> {
        names::check_job(job)?;
        let job_dir = self.job_dir(job);
        if create_private_dir(&job_dir)? {
            sync_dir(&self.root)?;
        }
        check_plain_dir(&job_dir)?;
        let _lock = self.lock_job(&job_dir)?;
        let taken = || StoreError::EpochTaken {
            path: job_dir.join(epoch.to_string()),
            job: job.to_owned(),
            epoch,
        };
        if job_dir.join(epoch.to_string()).symlink_metadata().is_ok() {
            return Err(taken());
        }
        for e in entries(&job_dir)? {
            if let Some((ep, _)) = parse_staging(&e)
                && ep == epoch
                && Lock::try_dir(&job_dir.join(&e))?.is_none()
            {
                return Err(taken());
            }
        }
        let path = job_dir.join(format!("{STAGING_PREFIX}{epoch}-{}", std::process::id()));
        if !create_private_dir(&path)? {
            return Err(taken());
        }
        let lock = Lock::try_dir(&path)?.ok_or_else(taken)?;
        Ok(Pending {
            job: job.to_owned(),
            epoch,
            job_dir,
            path,
            lock: Some(lock),
            keep: false,
        })
    }

    /// The names of the jobs with a directory under the root, sorted.
    pub fn jobs(&self) -> Result<Vec<String>, StoreError> {
        let mut jobs: Vec<String> = entries(&self.root)?
            .into_iter()
            .filter(|n| names::check_job(n).is_ok() && self.root.join(n).is_dir())
            .collect();
        jobs.sort();
        Ok(jobs)
    }

    /// The committed epochs of `job` (directories named by a number), ascending. Their
    /// manifests are not read.
    pub fn epochs(&self, job: &str) -> Result<Vec<u64>, StoreError> {
        names::check_job(job)?;
        let dir = self.job_dir(job);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut epochs: Vec<u64> = entries(&dir)?
            .iter()
            .filter_map(|n| parse_epoch(n))
            .filter(|e| dir.join(e.to_string()).is_dir())
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// One more than the highest epoch of `job` committed or being written; 1 for a new job.
    pub fn next_epoch(&self, job: &str) -> Result<u64, StoreError> {
        let mut max = self.epochs(job)?.last().copied().unwrap_or(0);
        let dir = self.job_dir(job);
        if dir.is_dir() {
            for e in entries(&dir)? {
                if let Some((ep, _)) = parse_staging(&e) {
                    max = max.max(ep);
                }
            }
        }
        Ok(max + 1)
    }

    /// The newest committed snapshot of `job`, checked, or `None` if it has none.
    pub fn latest(&self, job: &str) -> Result<Option<Snapshot>, StoreError> {
        match self.epochs(job)?.last() {
            None => Ok(None),
            Some(&epoch) => {
                let s = Snapshot::open(&self.job_dir(job).join(epoch.to_string()))?;
                s.expect(job, epoch)?;
                Ok(Some(s))
            }
        }
    }

    /// Committed snapshots whose manifest reads and checks, newest first (by commit time, then
    /// epoch). Damaged ones are left out; [`scan`](Self::scan) reports them.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        Ok(self.scan()?.0)
    }

    /// Like [`list`](Self::list), and also the committed-looking directories whose manifest
    /// cannot be read or checked, with the reason.
    #[allow(clippy::type_complexity)]
    pub fn scan(&self) -> Result<(Vec<SnapshotInfo>, Vec<(PathBuf, StoreError)>), StoreError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for job in self.jobs()? {
            let epochs = self.epochs(&job)?;
            let newest = epochs.last().copied();
            for epoch in epochs {
                let path = self.job_dir(&job).join(epoch.to_string());
                let opened = Snapshot::open(&path).and_then(|s| s.expect(&job, epoch).map(|()| s));
                match opened {
                    Ok(s) => good.push(s.info(Some(epoch) == newest)),
                    // Removed by a concurrent gc between the listing and the read.
                    Err(StoreError::NotSnapshot { .. }) if !path.exists() => {}
                    Err(e) => bad.push((path, e)),
                }
            }
        }
        good.sort_by(|a: &SnapshotInfo, b| {
            (b.created, b.epoch, &a.job).cmp(&(a.created, a.epoch, &b.job))
        });
        Ok((good, bad))
    }

    /// Finds a committed snapshot and checks its manifest:
    /// - `job.epoch` (e.g. `heat.3`): that epoch of that job;
    /// - `job` (e.g. `heat`): the newest committed epoch of that job;
    /// - a path (anything with a `/`): the snapshot directory there, or the one holding that
    ///   `manifest` file; it may be outside the root.
    ///
    /// A name that reads both ways (`a.3` when job `a` has epoch 3 and job `a.3` exists) is
    /// taken as `job.epoch`, the form [`Snapshot::name`] prints.
    pub fn resolve(&self, name_or_path: &str) -> Result<Snapshot, StoreError> {
        let s = name_or_path;
        if s.contains('/') || s == "." || s == ".." {
            return self.resolve_path(Path::new(s));
        }
        let mut searched = Vec::new();
        if let Some((job, ep)) = s.rsplit_once('.')
            && let Some(epoch) = parse_epoch(ep)
            && names::check_job(job).is_ok()
        {
            let dir = self.job_dir(job).join(ep);
            if dir.symlink_metadata().is_ok() {
                let snap = Snapshot::open(&dir)?;
                snap.expect(job, epoch)?;
                return Ok(snap);
            }
            searched.push(dir);
        }
        if names::check_job(s).is_ok() {
            if let Some(snap) = self.latest(s)? {
                return Ok(snap);
            }
            searched.push(self.job_dir(s));
        }
        if searched.is_empty() {
            searched.push(self.root.join(s));
        }
        Err(StoreError::NotFound {
            name: s.to_owned(),
            searched,
        })
    }

    fn resolve_path(&self, path: &Path) -> Result<Snapshot, StoreError> {
        let dir = if path.file_name().is_some_and(|n| n == MANIFEST_FILE) && path.is_file() {
            path.parent().unwrap_or(path)
        } else {
            path
        };
        if !dir.exists() {
            return Err(StoreError::NotFound {
                name: path.display().to_string(),
                searched: vec![path.to_owned()],
            });
        }
        let dir = dir.canonicalize().map_err(StoreError::io("locate", dir))?;
        if let Some(n) = dir.file_name().and_then(|n| n.to_str())
            && (n.starts_with(STAGING_PREFIX) || n.starts_with(TRASH_PREFIX))
        {
            return Err(StoreError::NotSnapshot {
                path: dir.clone(),
                why: "it was never committed or is being removed".into(),
            });
        }
        let snap = Snapshot::open(&dir)?;
        // Inside this root, the directory's place names the job and epoch: they must agree.
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        if let Some(job_dir) = dir.parent()
            && job_dir.parent() == Some(root.as_path())
            && let Some(job) = job_dir.file_name().and_then(|n| n.to_str())
            && let Some(epoch) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_epoch)
        {
            snap.expect(job, epoch)?;
        }
        Ok(snap)
    }

    /// Keeps the newest `keep` committed snapshots of each job (of `job` only, if given) whose
    /// manifest checks and removes the older ones (a damaged snapshot is neither counted nor
    /// removed; [`scan`](Self::scan) reports it), the staging directories of writers that are gone, and the
    /// leftovers of interrupted removals and commits; repairs `latest`. The newest committed
    /// snapshot of a job is never removed (`keep` 0 counts as 1). A directory is renamed to
    /// `.trash-…` (and the rename made durable) before it is deleted, so an interrupted gc
    /// never leaves a half-deleted snapshot under a committed name. Returns what was removed.
    pub fn gc(&self, keep: usize, job: Option<&str>) -> Result<Vec<PathBuf>, StoreError> {
        self.gc_with(keep, job, false)
    }

    /// Like [`gc`](Self::gc), for a caller that removes the snapshots' copies in node stores
    /// itself (`mpicr gc` outside a running job): a removed snapshot whose parts are kept in
    /// node stores (its manifest names their `nodes`) leaves its manifest behind as a record,
    /// `.nodes-<epoch>-<pid>/manifest`, renamed there from its committed name in the same step
    /// as a removal (so no crash loses it), until [`NodeRecord::forget`] says its node copies
    /// are gone. [`node_records`](Self::node_records) lists the records.
    pub fn gc_recording_node_copies(
        &self,
        keep: usize,
        job: Option<&str>,
    ) -> Result<Vec<PathBuf>, StoreError> {
        self.gc_with(keep, job, true)
    }

    fn gc_with(
        &self,
        keep: usize,
        job: Option<&str>,
        record_nodes: bool,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let keep = keep.max(1);
        let jobs = match job {
            Some(j) => {
                names::check_job(j)?;
                if self.job_dir(j).is_dir() {
                    vec![j.to_owned()]
                } else {
                    Vec::new()
                }
            }
            None => self.jobs()?,
        };
        let mut removed = Vec::new();
        for job in jobs {
            self.gc_job(&job, keep, record_nodes, &mut removed)?;
        }
        Ok(removed)
    }

    fn gc_job(
        &self,
        job: &str,
        keep: usize,
        record_nodes: bool,
        removed: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let dir = self.job_dir(job);
        check_plain_dir(&dir)?;
        let _lock = self.lock_job(&dir)?;
        // Leftovers of an interrupted gc, and temporary links of an interrupted commit.
        for name in entries(&dir)? {
            let path = dir.join(&name);
            if name.starts_with(TRASH_PREFIX) {
                remove_tree(&path)?;
                removed.push(path);
            } else if name.starts_with(LATEST_TMP_PREFIX) {
                std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
                removed.push(path);
            }
        }
        // Only snapshots whose manifest checks count towards `keep`, and only they are removed:
        // a damaged one never displaces a good one, and is left for a person to look at.
        let epochs = self.epochs(job)?;
        let good: Vec<u64> = epochs
            .iter()
            .copied()
            .filter(|&e| {
                Snapshot::open(&dir.join(e.to_string()))
                    .and_then(|s| s.expect(job, e))
                    .is_ok()
            })
            .collect();
        match (good.last(), epochs.is_empty()) {
            (Some(&newest), _) => set_latest(&dir, Some(newest), true)?,
            (None, true) => set_latest(&dir, None, true)?,
            (None, false) => {}
        }
        let mut trash = Vec::new();
        for name in entries(&dir)? {
            let path = dir.join(&name);
            let old =
                parse_epoch(&name).is_some_and(|e| good.iter().rev().skip(keep).any(|&x| x == e));
            // A staging directory whose writer still holds its lock is left alone.
            let abandoned = parse_staging(&name).is_some() && Lock::try_dir(&path)?.is_some();
            if old || abandoned {
                let record = old && record_nodes && has_node_copies(&path);
                let prefix = if record { NODES_PREFIX } else { TRASH_PREFIX };
                let to = dir.join(format!("{prefix}{name}-{}", std::process::id()));
                rename_noreplace(&path, &to).map_err(StoreError::io("move to the trash", &path))?;
                trash.push((path, to, record));
            }
        }
        if !trash.is_empty() {
            sync_dir(&dir)?;
        }
        for (path, to, record) in trash {
            if record {
                keep_only_manifest(&to)?;
            } else {
                remove_tree(&to)?;
            }
            removed.push(path);
        }
        Ok(())
    }

    fn lock_job(&self, job_dir: &Path) -> Result<Lock, StoreError> {
        Lock::acquire_file(&job_dir.join(LOCK_FILE))
    }
}

/// A global snapshot being written: a staging directory `<root>/<job>/.staging-<epoch>-<pid>`
/// that this value holds a lock on. Dropping it without committing removes the directory.
#[derive(Debug)]
pub struct Pending {
    job: String,
    epoch: u64,
    job_dir: PathBuf,
    path: PathBuf,
    lock: Option<Lock>,
    /// Leave the directory on drop (committed, or stopped on purpose as a crash would).
    keep: bool,
}

impl Pending {
    pub fn job(&self) -> &str {
        &self.job
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The staging directory, where ranks in other processes create their parts with
    /// [`PartWriter::create`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `rank`'s part in the staging directory.
    pub fn part_writer(&self, rank: u32, checkpointer: &str) -> Result<PartWriter, StoreError> {
        PartWriter::create(&self.path, &self.job, self.epoch, rank, checkpointer)
    }

    /// Commits the snapshot; see [`commit_with`](Self::commit_with) for the steps.
    pub fn commit(self, manifest: ManifestInput) -> Result<Snapshot, StoreError> {
        self.commit_with(manifest, |_| ControlFlow::Continue(()))
    }

    /// Commits the snapshot, calling `hook` after each [`CommitStep`]: check every part against
    /// what its writer reported, fsync the parts and the directory, write the manifest to a
    /// temporary name and fsync it, rename it to `manifest` and fsync the directory, rename the
    /// staging directory to `<epoch>` and fsync the job directory (the commit point), then
    /// point `latest` at it. If the hook breaks, the commit stops there and leaves the disk as a
    /// crash at that moment would ([`StoreError::CommitStopped`]); tests use this, and a
    /// runtime can use a step before [`CommitStep::Renamed`] to mirror the snapshot first.
    pub fn commit_with(
        mut self,
        input: ManifestInput,
        mut hook: impl FnMut(CommitStep) -> ControlFlow<()>,
    ) -> Result<Snapshot, StoreError> {
        let mut step = |step: CommitStep, this: &mut Pending| match hook(step) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => {
                this.keep = true;
                Err(StoreError::CommitStopped { step })
            }
        };
        let staging = self.path.clone();
        let bad = |what: String| StoreError::BadCommit {
            path: staging.clone(),
            what,
        };
        if input.job != self.job || input.epoch != self.epoch {
            return Err(bad(format!(
                "the manifest is for job `{}` epoch {}, the staging directory for job `{}` epoch {}",
                input.job, input.epoch, self.job, self.epoch
            )));
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let manifest = Manifest::from_input(input, created, &self.path)?;
        // A part held by node stores was checked there by its node's daemon.
        for p in manifest.parts.iter().filter(|p| p.nodes.is_empty()) {
            check_written(&self.path.join(&p.file), p, &self.job, self.epoch).map_err(bad)?;
        }
        step(CommitStep::PartsChecked, &mut self)?;

        for p in manifest.parts.iter().filter(|p| p.nodes.is_empty()) {
            let path = self.path.join(&p.file);
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(StoreError::io("fsync", &path))?;
        }
        sync_dir(&self.path)?;
        step(CommitStep::PartsSynced, &mut self)?;

        let tmp = self.path.join(MANIFEST_TMP);
        write_synced(&tmp, &manifest.encode())?;
        step(CommitStep::ManifestWritten, &mut self)?;

        let final_manifest = self.path.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &final_manifest).map_err(StoreError::io("rename", &tmp))?;
        sync_dir(&self.path)?;
        step(CommitStep::ManifestInPlace, &mut self)?;

        let lock = Lock::acquire_file(&self.job_dir.join(LOCK_FILE))?;
        let committed = self.job_dir.join(self.epoch.to_string());
        match rename_noreplace(&self.path, &committed) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                return Err(StoreError::EpochTaken {
                    path: committed,
                    job: self.job.clone(),
                    epoch: self.epoch,
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    op: "rename",
                    path: self.path.clone(),
                    source,
                });
            }
        }
        // Committed: whatever happens now, the directory stays.
        self.keep = true;
        sync_dir(&self.job_dir)?;
        step(CommitStep::Renamed, &mut self)?;

        let newest = entries(&self.job_dir)?
            .iter()
            .filter_map(|n| parse_epoch(n))
            .max()
            .unwrap_or(self.epoch);
        // Past the commit point a failure here must not report the commit as failed: readers
        // go by the directories, and the next gc points `latest` right again.
        let _ = set_latest(&self.job_dir, Some(newest), false);
        drop(lock);
        step(CommitStep::LatestUpdated, &mut self)?;

        Ok(Snapshot {
            path: committed,
            manifest,
        })
    }

    /// Gives up: removes the staging directory and everything in it.
    pub fn abandon(self) {
        // Drop does it.
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
        self.lock.take();
    }
}

/// A committed snapshot whose manifest has been read and checked.
#[derive(Debug, Clone)]
pub struct Snapshot {
    path: PathBuf,
    manifest: Manifest,
}

impl Snapshot {
    /// Opens the snapshot directory `dir` and checks its manifest.
    pub fn open(dir: &Path) -> Result<Snapshot, StoreError> {
        let meta = std::fs::metadata(dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotSnapshot {
                    path: dir.to_owned(),
                    why: "it does not exist".into(),
                }
            } else {
                StoreError::Io {
                    op: "inspect",
                    path: dir.to_owned(),
                    source,
                }
            }
        })?;
        if !meta.is_dir() {
            return Err(StoreError::NotSnapshot {
                path: dir.to_owned(),
                why: "it is not a directory".into(),
            });
        }
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.exists() {
            return Err(StoreError::NotSnapshot {
                path: dir.to_owned(),
                why: "it has no manifest".into(),
            });
        }
        let manifest = Manifest::read(&mpath)?;
        Ok(Snapshot {
            path: dir.to_owned(),
            manifest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn job(&self) -> &str {
        &self.manifest.job
    }
    pub fn epoch(&self) -> u64 {
        self.manifest.epoch
    }

    /// `job.epoch`, which [`Store::resolve`] finds again.
    pub fn name(&self) -> String {
        format!("{}.{}", self.manifest.job, self.manifest.epoch)
    }

    /// Fails with [`StoreError::Foreign`] unless this is a snapshot of `job`.
    pub fn expect_job(&self, job: &str) -> Result<(), StoreError> {
        if self.manifest.job != job {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                expected: format!("job `{job}`"),
                found: format!("job `{}`", self.manifest.job),
            });
        }
        Ok(())
    }

    fn expect(&self, job: &str, epoch: u64) -> Result<(), StoreError> {
        if self.manifest.job != job || self.manifest.epoch != epoch {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                expected: format!("job `{job}` epoch {epoch}"),
                found: format!("job `{}` epoch {}", self.manifest.job, self.manifest.epoch),
            });
        }
        Ok(())
    }

    /// The path of `rank`'s part file.
    pub fn part_path(&self, rank: u32) -> Result<PathBuf, StoreError> {
        let p = self.part_info(rank)?;
        Ok(self.path.join(&p.file))
    }

    fn part_info(&self, rank: u32) -> Result<&crate::PartInfo, StoreError> {
        self.manifest
            .part(rank)
            .ok_or_else(|| StoreError::PartMissing {
                path: self.path.clone(),
                rank,
            })
    }

    /// Opens `rank`'s part: checks its size, magic, version, structure and whole-file checksum,
    /// and that it is the part the manifest names (job, epoch, rank, checksum, sections).
    pub fn read_part(&self, rank: u32) -> Result<PartReader, StoreError> {
        let p = self.part_info(rank)?;
        PartReader::open_expected(
            &self.path.join(&p.file),
            p,
            &self.manifest.job,
            self.manifest.epoch,
        )
    }

    /// Reads every part in the snapshot's directory completely and checks every checksum.
    /// Parts kept in node stores (their entry names nodes) are checked by the node daemon that
    /// restarts their rank, against the manifest's size and checksum.
    pub fn verify(&self) -> Result<(), StoreError> {
        for p in self.manifest.parts.iter().filter(|p| p.nodes.is_empty()) {
            self.read_part(p.rank)?.verify_sections()?;
        }
        Ok(())
    }

    /// The summary `list` shows.
    pub fn info(&self, latest: bool) -> SnapshotInfo {
        let m = &self.manifest;
        let here: u64 = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
            .sum();
        let elsewhere: u64 = m
            .parts
            .iter()
            .filter(|p| !p.nodes.is_empty() && !self.path.join(&p.file).exists())
            .map(|p| p.size)
            .sum();
        SnapshotInfo {
            job: m.job.clone(),
            epoch: m.epoch,
            name: self.name(),
            created: m.created,
            size: here + elsewhere,
            ranks: m.ranks(),
            checkpointers: m.checkpointers(),
            in_transit_messages: m.in_transit_messages,
            latest,
            path: self.path.clone(),
            duration_ms: m.extra_u64(EXTRA_DURATION_MS),
            stall_bound_ms: m.extra_u64(EXTRA_STALL_BOUND_MS),
            redundancy: Redundancy::of(m),
        }
    }
}

/// A committed epoch's directory name: a decimal number without leading zeros.
fn parse_epoch(name: &str) -> Option<u64> {
    let e: u64 = name.parse().ok()?;
    (e.to_string() == name).then_some(e)
}

/// `.staging-<epoch>-<pid>` → (epoch, pid).
fn parse_staging(name: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix(STAGING_PREFIX)?;
    let (e, p) = rest.split_once('-')?;
    Some((parse_epoch(e)?, p.parse().ok()?))
}

/// Whether the snapshot in `dir` keeps parts in node stores (manifest format 2, `nodes`).
fn has_node_copies(dir: &Path) -> bool {
    Snapshot::open(dir).is_ok_and(|s| s.manifest().parts.iter().any(|p| !p.nodes.is_empty()))
}

/// Removes everything in a node record's directory but its manifest.
fn keep_only_manifest(dir: &Path) -> Result<(), StoreError> {
    for name in entries(dir)? {
        if name != MANIFEST_FILE {
            remove_tree(&dir.join(name))?;
        }
    }
    Ok(())
}

/// Names in `dir` (not `.`/`..`), as UTF-8; other names are not the store's and are skipped.
pub(crate) fn entries(dir: &Path) -> Result<Vec<String>, StoreError> {
    let rd = std::fs::read_dir(dir).map_err(StoreError::io("list", dir))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(StoreError::io("list", dir))?;
        if let Ok(n) = e.file_name().into_string() {
            out.push(n);
        }
    }
    Ok(out)
}

/// A job directory must be a real directory, not a symbolic link.
fn check_plain_dir(dir: &Path) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(dir).map_err(StoreError::io("inspect", dir))?;
    if !meta.is_dir() {
        return Err(StoreError::NotDirectory {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(StoreError::io("create", path))?;
    f.write_all(bytes).map_err(StoreError::io("write", path))?;
    f.sync_all().map_err(StoreError::io("fsync", path))
}

/// Makes `<job_dir>/latest` a symlink to `epoch` (or removes it for `None`) atomically, unless
/// it already names `epoch`. Without `force`, a link naming a newer epoch is left alone.
/// Called with the job lock held.
fn set_latest(job_dir: &Path, epoch: Option<u64>, force: bool) -> Result<(), StoreError> {
    let link = job_dir.join(LATEST);
    let current = std::fs::read_link(&link)
        .ok()
        .and_then(|t| t.to_str().and_then(parse_epoch));
    match epoch {
        None => {
            if std::fs::symlink_metadata(&link).is_ok() {
                std::fs::remove_file(&link).map_err(StoreError::io("remove", &link))?;
                sync_dir(job_dir)?;
            }
        }
        Some(e) => {
            if current == Some(e) || (!force && current.is_some_and(|c| c > e)) {
                return Ok(());
            }
            let tmp = job_dir.join(format!("{LATEST_TMP_PREFIX}{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(e.to_string(), &tmp)
                .map_err(StoreError::io("create the link", &tmp))?;
            std::fs::rename(&tmp, &link).map_err(StoreError::io("rename", &tmp))?;
            sync_dir(job_dir)?;
        }
    }
    Ok(())
}

/// Removes a directory tree (or a file).
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let r = if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            op: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}
