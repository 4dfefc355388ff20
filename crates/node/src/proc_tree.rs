//! Process ancestry from `/proc`: a registration (at the coordinator) or a connection to a
//! node's control socket is accepted for rank R only from the process started as R or one of
//! its descendants (`mpicr run -- sh -c ./app` registers `app`, whose parent is the rank's
//! shell).

use std::path::Path;

/// How many parents are followed at most; a rank's MPI process is seldom deeper than a shell
/// or two below it.
const MAX_DEPTH: usize = 16;

/// Whether `pid` is `ancestor` or one of its descendants.
pub fn is_self_or_descendant(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..=MAX_DEPTH {
        if current == ancestor {
            return true;
        }
        match parent_of(current) {
            Some(parent) if parent > 1 => current = parent,
            _ => return false,
        }
    }
    false
}

/// The parent pid of a process.
fn parent_of(pid: u32) -> Option<u32> {
    stat_field(pid, 4)?.parse().ok()
}

/// When a process started, in clock ticks since boot: with the pid, it names one process
/// across pid reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Whether `pid` has exited and waits to be reaped (state `Z`) or is being torn down (`X`).
pub fn has_exited(pid: u32) -> bool {
    stat_field(pid, 3).is_some_and(|state| state == "Z" || state == "X")
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`. The command name (field 2) may
/// itself contain spaces and parentheses, so the fields are counted after its last `)`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let path = Path::new("/proc").join(pid.to_string()).join("stat");
    let stat = std::fs::read_to_string(path).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name
        .split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_descends_from_its_parent() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(is_self_or_descendant(me, me));
        assert!(is_self_or_descendant(me, parent));
        assert!(!is_self_or_descendant(parent, me));
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(me), start_time(me));
    }
}
