//! The names the store puts into paths and files, and their checks.

use crate::error::StoreError;

/// Longest job name (as `--job-name` allows).
pub const MAX_JOB_NAME: usize = 64;
/// Longest checkpointer name.
pub const MAX_CHECKPOINTER_NAME: usize = 64;

/// A job name is a directory name under the root: letters, digits, `.`, `_`, `-`, not
/// starting with `.` or `-` (the rules of `mpicr run --job-name`).
pub fn check_job(name: &str) -> Result<(), StoreError> {
    let bad = |why| {
        Err(StoreError::BadName {
            kind: "job",
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_JOB_NAME {
        return bad("is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may only contain letters, digits, `.`, `_` and `-`");
    }
    if name.starts_with(['.', '-']) {
        return bad("cannot start with `.` or `-`");
    }
    Ok(())
}

/// A checkpointer (CRS component) name: 1 to 64 letters, digits, `_` or `-`.
pub(crate) fn check_checkpointer(name: &str) -> Result<(), StoreError> {
    let bad = |why| {
        Err(StoreError::BadName {
            kind: "checkpointer",
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() || name.len() > MAX_CHECKPOINTER_NAME {
        return bad("must have 1 to 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return bad("may only contain letters, digits, `_` and `-`");
    }
    Ok(())
}

/// A section name: 1 to 255 bytes of UTF-8 without control characters.
pub(crate) fn check_section(name: &str) -> Result<(), StoreError> {
    let bad = |why| {
        Err(StoreError::BadName {
            kind: "section",
            name: name.escape_debug().to_string(),
            why,
        })
    };
    if name.is_empty() || name.len() > crate::part::MAX_SECTION_NAME {
        return bad("must have 1 to 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("cannot contain control characters");
    }
    Ok(())
}
