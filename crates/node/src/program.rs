//! Finding the program a job runs, before anything is started, so that a typo is reported as
//! one clear line instead of N failed ranks.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why the program of a job cannot be started.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProgramError {
    #[error("no program was given")]
    Empty,
    #[error("program `{0}` was not found in PATH")]
    NotInPath(String),
    #[error("program `{0}` does not exist")]
    Missing(String),
    #[error("`{0}` is a directory, not a program")]
    Directory(String),
    #[error("program `{0}` is not executable")]
    NotExecutable(String),
}

/// Resolves `program` the way `execvp` would: a name with a `/` is a path, any other name is
/// looked up in `path_var` (the value of `PATH`).
///
/// The result is the file that will be executed; the caller keeps `program` as `argv[0]`.
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
    let shown = program.to_string_lossy().into_owned();
    if program.is_empty() {
        return Err(ProgramError::Empty);
    }
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return check(&path).map(|()| path).map_err(|e| e.with_name(shown));
    }
    let path_var = path_var.map_or_else(|| OsString::from("/usr/bin:/bin"), OsStr::to_owned);
    let mut first_problem = None;
    for dir in std::env::split_paths(&path_var) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Problem::Missing) => {}
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    Err(
        first_problem.map_or(ProgramError::NotInPath(shown.clone()), |p| {
            p.with_name(shown)
        }),
    )
}

/// What is wrong with one candidate file.
#[derive(Debug, Clone, Copy)]
enum Problem {
    Missing,
    Directory,
    NotExecutable,
}

impl Problem {
    fn with_name(self, name: String) -> ProgramError {
        match self {
            Self::Missing => ProgramError::Missing(name),
            Self::Directory => ProgramError::Directory(name),
            Self::NotExecutable => ProgramError::NotExecutable(name),
        }
    }
}

fn check(path: &Path) -> Result<(), Problem> {
    let meta = std::fs::metadata(path).map_err(|_| Problem::Missing)?;
    if meta.is_dir() {
        return Err(Problem::Directory);
    }
    // The mode bits say whether anyone may execute it; access(2) says whether we may (it also
    // answers for root, who may execute a file only if some execute bit is set).
    let executable = meta.permissions().mode() & 0o111 != 0
        && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok();
    if executable {
        Ok(())
    } else {
        Err(Problem::NotExecutable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path() {
        let p = resolve(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(p.ends_with("sh"));
    }

    #[test]
    fn reports_each_kind_of_problem() {
        let path = Some(OsStr::new("/usr/bin:/bin"));
        assert_eq!(
            resolve(OsStr::new("no-such-program-xyz"), path),
            Err(ProgramError::NotInPath("no-such-program-xyz".into()))
        );
        assert_eq!(
            resolve(OsStr::new("/"), path),
            Err(ProgramError::Directory("/".into()))
        );
        assert_eq!(
            resolve(OsStr::new("/etc/hostname-xyz"), path),
            Err(ProgramError::Missing("/etc/hostname-xyz".into()))
        );
        assert_eq!(
            resolve(OsStr::new("/etc/passwd"), path),
            Err(ProgramError::NotExecutable("/etc/passwd".into()))
        );
        assert_eq!(resolve(OsStr::new(""), path), Err(ProgramError::Empty));
    }
}
