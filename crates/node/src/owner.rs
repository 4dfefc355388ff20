//! Which process a job's directory belongs to, so that any later process of the user can tell
//! a leftover from a directory in use.
//!
//! A launcher's shared-memory directory and a node daemon's two directories are removed by
//! their owner when it ends, and a node daemon's by its cleanup helper when it is killed. When
//! both are killed at once (`kill -9` of a process group, a node lost in a test that shares
//! `/dev/shm` with the others) nothing removes them, and segments of a finished job would fill
//! `/dev/shm` for good. So each such directory holds [`OWNER_FILE`], naming its owner by pid
//! and start time (a recycled pid is not mistaken for the owner), and launchers and node
//! daemons remove the directories of dead owners when they start.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::proc_tree::{has_exited, start_time};

/// Where launchers and node daemons keep a job's shared memory, when the machine has it.
pub const DEV_SHM: &str = "/dev/shm";

/// The start of a user's directory names in [`DEV_SHM`] (`mpicr-<uid>-<job>-…`).
pub fn shm_prefix(uid: u32) -> String {
    format!("mpicr-{uid}-")
}

/// Removes `uid`'s directories in [`DEV_SHM`] whose owner is dead.
pub fn remove_dead_shm(uid: u32) {
    let prefix = shm_prefix(uid);
    remove_dead(Path::new(DEV_SHM), uid, |name| name.starts_with(&prefix));
}

/// The file in a directory that names its owner: `<pid> <start time>\n`.
pub const OWNER_FILE: &str = ".mpicr-owner";

/// The same file as launchers wrote it before node daemons had one (same contents), so that
/// the leftovers of an older mpicr are recognised too.
const LEGACY_OWNER_FILE: &str = ".mpicr-launcher";

/// Records this process as the owner of `dir`.
pub fn mark_owned(dir: &Path) -> io::Result<()> {
    let pid = std::process::id();
    let line = format!("{pid} {}\n", start_time(pid).unwrap_or(0));
    std::fs::write(dir.join(OWNER_FILE), line)
}

/// Whether `dir` names an owner that no longer runs (gone, or a zombie its parent has not
/// reaped yet). A directory without a readable owner file is not judged: it may be a moment
/// old, or not ours.
pub fn owner_is_dead(dir: &Path) -> bool {
    let read = |name| std::fs::read_to_string(dir.join(name));
    let Ok(owner) = read(OWNER_FILE).or_else(|_| read(LEGACY_OWNER_FILE)) else {
        return false;
    };
    let mut fields = owner.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(pid)), Some(Ok(started))) = (fields.next(), fields.next()) else {
        return false;
    };
    u32::try_from(pid).map_or(true, |pid| {
        start_time(pid) != Some(started) || has_exited(pid)
    })
}

/// Removes each directory in `parent` whose name `is_ours` accepts, that belongs to `uid` and
/// whose owner is dead.
pub fn remove_dead(parent: &Path, uid: u32, is_ours: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !is_ours(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let mine = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if mine && owner_is_dead(&path) {
            tracing::info!(path = %path.display(), "removing the directory of a dead job process");
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_dead_owners_with_accepted_names_go() {
        let parent = tempfile::tempdir().unwrap();
        let uid = rustix::process::getuid().as_raw();
        let dir = |name: &str| {
            let path = parent.path().join(name);
            std::fs::create_dir(&path).unwrap();
            path
        };
        let live = dir("job-live");
        mark_owned(&live).unwrap();
        let dead = dir("job-dead");
        std::fs::write(dead.join(OWNER_FILE), "999999999 1\n").unwrap();
        let recycled = dir("job-recycled");
        std::fs::write(
            recycled.join(OWNER_FILE),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        let unmarked = dir("job-unmarked");
        let garbled = dir("job-garbled");
        std::fs::write(garbled.join(OWNER_FILE), "x y\n").unwrap();
        let legacy = dir("job-legacy");
        std::fs::write(legacy.join(LEGACY_OWNER_FILE), "999999999 1\n").unwrap();
        let other = dir("other-dead");
        std::fs::write(other.join(OWNER_FILE), "999999999 1\n").unwrap();

        remove_dead(parent.path(), uid, |n| n.starts_with("job-"));

        assert!(live.exists(), "a live owner's directory stays");
        assert!(!dead.exists(), "a dead owner's directory goes");
        assert!(!legacy.exists(), "so does one an older mpicr marked");
        assert!(!recycled.exists(), "a recycled pid is not the owner");
        assert!(
            unmarked.exists() && garbled.exists(),
            "unknown owners are left"
        );
        assert!(other.exists(), "names not accepted are left");
        remove_dead(parent.path(), uid.wrapping_add(1), |_| true);
        assert!(
            live.exists() && other.exists(),
            "another uid's scan leaves ours"
        );
    }

    #[test]
    fn an_owner_that_exited_and_is_not_reaped_yet_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_time(pid).expect("the child has a start time until reaped");
        std::fs::write(dir.path().join(OWNER_FILE), format!("{pid} {started}\n")).unwrap();
        while !has_exited(pid) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(owner_is_dead(dir.path()), "a zombie owner counts as dead");
        child.wait().unwrap();
        assert!(owner_is_dead(dir.path()));
    }
}
