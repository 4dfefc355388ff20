//! Parsing `/proc/self` files. The parsers work on byte slices and allocate nothing, because
//! the maps and stat parsers run while memory is being read.

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapsLine<'a> {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) exec: bool,
    pub(crate) shared: bool,
    pub(crate) offset: u64,
    pub(crate) dev_major: u32,
    pub(crate) dev_minor: u32,
    pub(crate) ino: u64,
    /// The path or pseudo-name (`[heap]`), possibly empty, possibly ending in " (deleted)".
    pub(crate) path: &'a [u8],
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = (c as char).to_digit(10)?;
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Splits off the next space-separated field (skipping leading spaces).
fn field<'a>(s: &mut &'a [u8]) -> &'a [u8] {
    while let [b' ', rest @ ..] = *s {
        *s = rest;
    }
    let n = s.iter().position(|&c| c == b' ').unwrap_or(s.len());
    let (f, rest) = s.split_at(n);
    *s = rest;
    f
}

pub(crate) fn parse_maps_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let mut s = line;
    let range = field(&mut s);
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = hex(&range[..dash])?;
    let end = hex(&range[dash + 1..])?;
    let perms = field(&mut s);
    if perms.len() != 4 {
        return None;
    }
    let offset = hex(field(&mut s))?;
    let dev = field(&mut s);
    let colon = dev.iter().position(|&c| c == b':')?;
    let dev_major = hex(&dev[..colon])? as u32;
    let dev_minor = hex(&dev[colon + 1..])? as u32;
    let ino = dec(field(&mut s))?;
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    Some(MapsLine {
        start,
        end,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        dev_major,
        dev_minor,
        ino,
        path: s,
    })
}

/// Field numbers (1-based, as in proc(5)) of `/proc/self/stat` that capture reads.
pub(crate) const STAT_START_CODE: usize = 26;
pub(crate) const STAT_END_CODE: usize = 27;
pub(crate) const STAT_START_STACK: usize = 28;
pub(crate) const STAT_START_DATA: usize = 45;
pub(crate) const STAT_END_DATA: usize = 46;
pub(crate) const STAT_START_BRK: usize = 47;
pub(crate) const STAT_ARG_START: usize = 48;
pub(crate) const STAT_ARG_END: usize = 49;
pub(crate) const STAT_ENV_START: usize = 50;
pub(crate) const STAT_ENV_END: usize = 51;

/// Parses the numeric fields of `/proc/self/stat` into `out[field]` (fields 3..=52).
pub(crate) fn parse_stat(text: &[u8], out: &mut [u64; 53]) -> Option<()> {
    // The command name (field 2) may hold spaces and parentheses: start after the last ')'.
    let close = text.iter().rposition(|&c| c == b')')?;
    let mut s = &text[close + 1..];
    let mut n = 3;
    loop {
        let f = field(&mut s);
        if f.is_empty() || n >= out.len() {
            break;
        }
        let f = if f.last() == Some(&b'\n') {
            &f[..f.len() - 1]
        } else {
            f
        };
        // Field 3 is the state letter; negative numbers do not occur in the fields we use.
        out[n] = dec(f).unwrap_or(0);
        n += 1;
    }
    (n > STAT_ENV_END).then_some(())
}

/// The value of a `Key:\tvalue` line of `/proc/self/status` or `/proc/self/fdinfo/N`.
pub(crate) fn keyed<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// (type, value) pairs of `/proc/self/auxv`, AT_NULL excluded.
pub(crate) fn parse_auxv(raw: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for pair in raw.chunks_exact(16) {
        let mut k = [0u8; 8];
        let mut v = [0u8; 8];
        k.copy_from_slice(&pair[..8]);
        v.copy_from_slice(&pair[8..]);
        let k = u64::from_ne_bytes(k);
        if k == 0 {
            break;
        }
        out.push((k, u64::from_ne_bytes(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let l = parse_maps_line(
            b"7f2c11b36000-7f2c11b5c000 r--p 00026000 fe:00 326279     /usr/lib/libc.so.6",
        )
        .unwrap();
        assert_eq!(l.start, 0x7f2c11b36000);
        assert_eq!(l.end, 0x7f2c11b5c000);
        assert!(l.read && !l.write && !l.exec && !l.shared);
        assert_eq!(l.offset, 0x26000);
        assert_eq!((l.dev_major, l.dev_minor, l.ino), (0xfe, 0, 326279));
        assert_eq!(l.path, b"/usr/lib/libc.so.6");
        let l = parse_maps_line(b"7ffdd30af000-7ffdd30d0000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(l.path, b"");
        let l = parse_maps_line(b"1000-2000 rw-s 00000000 00:01 5  /a b (deleted)").unwrap();
        assert!(l.shared);
        assert_eq!(l.path, b"/a b (deleted)");
        assert!(parse_maps_line(b"garbage").is_none());
    }

    #[test]
    fn stat_parses_past_odd_names() {
        let mut text = String::from("12 (a) b) R");
        for i in 4..=52 {
            text.push_str(&format!(" {i}"));
        }
        text.push('\n');
        let mut out = [0u64; 53];
        parse_stat(text.as_bytes(), &mut out).unwrap();
        assert_eq!(out[STAT_START_CODE], 26);
        assert_eq!(out[STAT_ENV_END], 51);
        assert_eq!(out[52], 52);
    }
}
