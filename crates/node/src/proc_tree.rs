//! Process ancestry from `/proc`: a connection to the node's control socket is accepted for
//! rank R only from the process the daemon started as R or one of its descendants.

/// How many parents are followed at most.
const MAX_DEPTH: usize = 16;

/// Whether `pid` is `ancestor` or one of its descendants.
pub(crate) fn is_self_or_descendant(pid: u32, ancestor: u32) -> bool {
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

/// The parent pid (field 4 of `/proc/<pid>/stat`, counted after the command name's last `)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_descends_from_its_parent() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(is_self_or_descendant(me, parent));
        assert!(!is_self_or_descendant(parent, me));
    }
}
