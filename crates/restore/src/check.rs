//! Everything that can refuse an image is checked here, before the restorer changes anything:
//! this machine, the vdso, every file the image relies on, limits, addresses.

use std::os::unix::fs::FileExt;
use std::path::Path;

use image::Image;
use image::format::{FdKind, FileIdentity, PAGE_SIZE, RegionDesc, RegionKind};

/// The current process's vdso area: (vvar, vvar_vclock, vdso) ranges, (0, 0) when absent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OwnVdso {
    pub(crate) vvar: (u64, u64),
    pub(crate) vvar_vclock: (u64, u64),
    pub(crate) vdso: (u64, u64),
}

fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

pub(crate) fn own_vdso() -> Result<OwnVdso, String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let mut v = OwnVdso::default();
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let range = it.next().and_then(parse_range);
        let name = it.nth(4);
        if let (Some(r), Some(n)) = (range, name) {
            match n {
                "[vvar]" => v.vvar = r,
                "[vvar_vclock]" => v.vvar_vclock = r,
                "[vdso]" => v.vdso = r,
                _ => {}
            }
        }
    }
    Ok(v)
}

fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub(crate) fn same_contents(id: &FileIdentity, st: &rustix::fs::Stat) -> bool {
    st.st_size as u64 == id.size
        && st.st_mtime == id.mtime_sec
        && st.st_mtime_nsec as u32 == id.mtime_nsec
}

/// How the file `st` differs from the version `id` an image was taken with, for a message.
pub(crate) fn how_it_changed(id: &FileIdentity, st: &rustix::fs::Stat) -> String {
    if st.st_size as u64 == id.size {
        "it has the same size but another modification time".into()
    } else {
        format!("its size went from {} to {} bytes", id.size, st.st_size)
    }
}

fn len(r: (u64, u64)) -> u64 {
    r.1 - r.0
}

/// Validates an image (read and checksummed by `stage`) against this machine.
pub(crate) fn check(img: &Image) -> Result<OwnVdso, String> {
    let m = &img.meta;
    let uts = rustix::system::uname();
    let machine = uts.machine().to_string_lossy().into_owned();
    let release = uts.release().to_string_lossy().into_owned();
    if m.machine != machine {
        return Err(format!(
            "image was taken on {} and this machine is {machine}",
            m.machine
        ));
    }
    if major_minor(&m.kernel_release).is_none()
        || major_minor(&m.kernel_release) != major_minor(&release)
    {
        return Err(format!(
            "image was taken on kernel {} and this is kernel {release} (major.minor must match)",
            m.kernel_release
        ));
    }
    if !m.rseq_disabled {
        return Err("image was taken with rseq registered; not restorable".into());
    }

    // The vdso: same size and the very same code, or cached vdso pointers in the image break.
    let own = own_vdso()?;
    let l = &img.layout;
    if len(l.vdso) != len(own.vdso)
        || len(l.vvar) != len(own.vvar)
        || len(l.vvar_vclock) != len(own.vvar_vclock)
    {
        return Err("the vdso layout differs from the image's (different kernel build)".into());
    }
    if len(own.vdso) > 0 {
        let mem = std::fs::File::open("/proc/self/mem")
            .map_err(|e| format!("cannot open /proc/self/mem: {e}"))?;
        let mut buf = vec![0u8; len(own.vdso) as usize];
        mem.read_exact_at(&mut buf, own.vdso.0)
            .map_err(|e| format!("cannot read the vdso: {e}"))?;
        if crc32c::crc32c(&buf) != l.vdso_crc {
            return Err("the vdso code differs from the image's (different kernel build)".into());
        }
        // The three must keep their relative places.
        let delta = l.vdso.0.wrapping_sub(own.vdso.0);
        if l.vvar.0.wrapping_sub(own.vvar.0) != delta
            || (len(own.vvar_vclock) > 0
                && l.vvar_vclock.0.wrapping_sub(own.vvar_vclock.0) != delta)
        {
            return Err("the vdso and vvar are placed differently relative to each other".into());
        }
    }

    // Files.
    let exe = rustix::fs::stat(m.exe_path.as_str())
        .map_err(|e| format!("the program {} is missing: {e}", m.exe_path))?;
    if !same_contents(&m.exe, &exe) {
        return Err(format!(
            "the program {} changed since the checkpoint: {}",
            m.exe_path,
            how_it_changed(&m.exe, &exe)
        ));
    }
    for r in &img.regions {
        file_region(&r.desc)?;
    }
    for f in &m.fds {
        if f.kind != FdKind::Regular {
            continue;
        }
        let st = rustix::fs::stat(f.path.as_str())
            .map_err(|e| format!("file {} (fd {}) is missing: {e}", f.path, f.fd))?;
        let append = f.flags & libc::O_APPEND as u32 != 0;
        if !append && (st.st_size as u64) < f.offset {
            return Err(format!(
                "file {} (fd {}) is now {} bytes, shorter than its saved offset {}",
                f.path, f.fd, st.st_size, f.offset
            ));
        }
    }
    if !Path::new(&m.cwd).is_dir() {
        return Err(format!("the working directory {} is missing", m.cwd));
    }
    for &(res, _cur, max) in &m.rlimits {
        let now = rustix::process::getrlimit(resource(res)?);
        let now_max = now.maximum.unwrap_or(u64::MAX);
        if max > now_max {
            return Err(format!(
                "rlimit {res}: the image's hard limit {max} is above this process's {now_max}"
            ));
        }
    }
    Ok(own)
}

/// A file mapped by region `d` (nothing to check for other kinds) is still the one it was.
pub(crate) fn file_region(d: &RegionDesc) -> Result<(), String> {
    if !d.kind.is_file() {
        return Ok(());
    }
    let st = rustix::fs::stat(d.name.as_str())
        .map_err(|e| format!("file {} mapped at {:#x} is missing: {e}", d.name, d.start))?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(format!("{} is no longer a regular file", d.name));
    }
    // A shared mapping's contents are the file's, which others may legitimately change;
    // only its size matters (pages past the end would fault). A private mapping's
    // unchanged pages come from the file, so it must be the same file version.
    let unchanged = if d.kind == RegionKind::FileShared {
        st.st_size as u64 == d.identity.size
    } else {
        same_contents(&d.identity, &st)
    };
    if !unchanged {
        return Err(format!(
            "file {} mapped at {:#x} changed since the checkpoint: {}",
            d.name,
            d.start,
            how_it_changed(&d.identity, &st)
        ));
    }
    if !d.file_offset.is_multiple_of(PAGE_SIZE) {
        return Err(format!("{}: bad file offset", d.name));
    }
    Ok(())
}

pub(crate) fn resource(r: u32) -> Result<rustix::process::Resource, String> {
    use rustix::process::Resource as R;
    Ok(match r {
        0 => R::Cpu,
        1 => R::Fsize,
        2 => R::Data,
        3 => R::Stack,
        4 => R::Core,
        5 => R::Rss,
        6 => R::Nproc,
        7 => R::Nofile,
        8 => R::Memlock,
        9 => R::As,
        10 => R::Locks,
        11 => R::Sigpending,
        12 => R::Msgqueue,
        13 => R::Nice,
        14 => R::Rtprio,
        15 => R::Rttime,
        _ => return Err(format!("unknown rlimit {r}")),
    })
}
