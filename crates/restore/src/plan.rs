//! The restore program: the list of system calls the relocated routine (`blob`) executes after
//! the restorer has let go of its own memory. Every argument is computed here, in ordinary
//! Rust, so the routine itself only loads six words, issues `syscall` and checks the result.
//!
//! A record is 11 little-endian u64: `nr, a0..a5, check, expect, msg_ptr, msg_len`.
//! `check` 0: the result must not be an error (-4095..-1); 1: it must equal `expect`.
//! On failure the routine writes the message to fd 2 and exits with status 70 (a failure after
//! the restorer started replacing its own memory).
//! The last record has `nr == u64::MAX`: `a0` = rsp, `a1` = rip, `a2` = rax; it jumps there.

use image::Image;
use image::format::{PAGE_SIZE, RFLAG_STACK, RegionKind};

use crate::check::OwnVdso;

pub(crate) const RECORD_WORDS: usize = 11;
pub(crate) const JUMP: u64 = u64::MAX;
/// Code page(s) at the start of the plan region.
pub(crate) const CODE_LEN: u64 = 4096;
pub(crate) const STACK_LEN: u64 = 64 << 10;
/// The top of the user address space (47-bit).
pub(crate) const TASK_END: u64 = 0x7fff_ffff_f000;

/// Descriptors the program uses, opened by `prep`.
#[derive(Debug)]
pub(crate) struct Fds {
    /// Per region (same order as the image's), the file descriptor to map, or -1.
    pub(crate) region: Vec<i32>,
    /// The program file for PR_SET_MM_MAP's exe_fd, if this process may change it.
    pub(crate) exe: Option<i32>,
    /// Every descriptor to close before jumping.
    pub(crate) close: Vec<i32>,
}

/// A built program, to be placed at `base`.
#[derive(Debug)]
pub(crate) struct Built {
    /// Bytes placed at `base + CODE_LEN`: aux data, then the records.
    pub(crate) data: Vec<u8>,
    /// Address of the first record.
    pub(crate) records: u64,
    /// Address of the top of the routine's stack.
    pub(crate) stack_top: u64,
    /// Total size of the plan region.
    pub(crate) len: u64,
}

struct Builder {
    data_base: u64,
    aux: Vec<u8>,
    recs: Vec<[u64; RECORD_WORDS]>,
}

impl Builder {
    fn aux(&mut self, bytes: &[u8]) -> u64 {
        while !self.aux.len().is_multiple_of(8) {
            self.aux.push(0);
        }
        let addr = self.data_base + self.aux.len() as u64;
        self.aux.extend_from_slice(bytes);
        addr
    }
    fn msg(&mut self, s: &str) -> (u64, u64) {
        let line = format!("mpicr-restore: {s} (after the point of no return)\n");
        (self.aux(line.as_bytes()), line.len() as u64)
    }
    fn call(&mut self, nr: i64, args: [u64; 6], expect: Option<u64>, msg: (u64, u64)) {
        let (check, exp) = match expect {
            Some(v) => (1, v),
            None => (0, 0),
        };
        self.recs.push([
            nr as u64, args[0], args[1], args[2], args[3], args[4], args[5], check, exp, msg.0,
            msg.1,
        ]);
    }
}

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// The ranges that survive the big unmap: the plan region, the vdso area and the staging
/// mappings.
fn keep_ranges(base: u64, len: u64, own: &OwnVdso, staged: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut keep = vec![(base, base + len)];
    keep.extend_from_slice(staged);
    for r in [own.vvar, own.vvar_vclock, own.vdso] {
        if r.1 > r.0 {
            keep.push(r);
        }
    }
    keep.sort_unstable();
    keep
}

/// Builds the program for plan region `base`; `temp` is a free area for moving the vdso
/// when its old and new places overlap. `staged`: per region of the image, the address of the
/// mapping that holds its pages (`stage`), which the program moves into place.
pub(crate) fn build(
    img: &Image,
    staged: &[Option<u64>],
    own: &OwnVdso,
    fds: &Fds,
    base: u64,
    temp: u64,
) -> Built {
    // Pass 1 measures, pass 2 uses the real length (the length does not depend on it).
    let first = build_at(img, staged, own, fds, base, temp, 0);
    build_at(img, staged, own, fds, base, temp, first.len)
}

/// The ranges of the staging mappings.
pub(crate) fn staged_ranges(img: &Image, staged: &[Option<u64>]) -> Vec<(u64, u64)> {
    img.regions
        .iter()
        .zip(staged)
        .filter_map(|(r, a)| a.map(|a| (a, a + r.desc.len())))
        .collect()
}

fn build_at(
    img: &Image,
    staged: &[Option<u64>],
    own: &OwnVdso,
    fds: &Fds,
    base: u64,
    temp: u64,
    len: u64,
) -> Built {
    let mut b = Builder {
        data_base: base + CODE_LEN,
        aux: Vec::new(),
        recs: Vec::new(),
    };
    let l = &img.layout;

    // 1. Let go of everything but the plan region, the vdso area and the staged pages.
    let m = b.msg("unmapping the restorer failed");
    let mut at = 0u64;
    for (s, e) in keep_ranges(base, len.max(1), own, &staged_ranges(img, staged)) {
        if s > at {
            b.call(libc::SYS_munmap, [at, s - at, 0, 0, 0, 0], None, m);
        }
        at = at.max(e);
    }
    if at < TASK_END {
        b.call(libc::SYS_munmap, [at, TASK_END - at, 0, 0, 0, 0], None, m);
    }

    // 2. Move the vdso area to where the image had it.
    let moves: Vec<((u64, u64), u64)> = [
        (own.vvar, l.vvar.0),
        (own.vvar_vclock, l.vvar_vclock.0),
        (own.vdso, l.vdso.0),
    ]
    .into_iter()
    .filter(|(r, to)| r.1 > r.0 && r.0 != *to)
    .collect();
    if !moves.is_empty() {
        let m = b.msg("moving the vdso failed");
        let lo = moves.iter().map(|(r, _)| r.0).min().unwrap_or(0);
        let hi = moves.iter().map(|(r, _)| r.1).max().unwrap_or(0);
        let tlo = moves.iter().map(|(_, t)| *t).min().unwrap_or(0);
        let thi = moves
            .iter()
            .map(|(r, t)| t + (r.1 - r.0))
            .max()
            .unwrap_or(0);
        let overlap = lo < thi && tlo < hi;
        let mremap = |b: &mut Builder, from: u64, n: u64, to: u64| {
            b.call(
                libc::SYS_mremap,
                [
                    from,
                    n,
                    n,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    to,
                    0,
                ],
                Some(to),
                m,
            );
        };
        for &((s, e), to) in &moves {
            if overlap {
                mremap(&mut b, s, e - s, temp + (s - lo));
            } else {
                mremap(&mut b, s, e - s, to);
            }
        }
        if overlap {
            for &((s, e), to) in &moves {
                mremap(&mut b, temp + (s - lo), e - s, to);
            }
        }
    }

    // 3. The image's memory: staged regions are in place or moved there (their pages move
    // with them, readable and writable until their protection is set), the others mapped
    // fresh.
    for (i, r) in img.regions.iter().enumerate() {
        let d = &r.desc;
        let m = b.msg(&format!(
            "restoring region {:#x}-{:#x} {}",
            d.start, d.end, d.name
        ));
        let prot = u64::from(d.prot);
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        if let Some(from) = staged[i] {
            if from != d.start {
                b.call(
                    libc::SYS_mremap,
                    [
                        from,
                        d.len(),
                        d.len(),
                        (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                        d.start,
                        0,
                    ],
                    Some(d.start),
                    m,
                );
            }
            if prot != rw {
                b.call(
                    libc::SYS_mprotect,
                    [d.start, d.len(), prot, 0, 0, 0],
                    None,
                    m,
                );
            }
            continue;
        }
        let mut flags = libc::MAP_FIXED as u64;
        let mut fd = u64::MAX; // -1
        let mut off = 0;
        match d.kind {
            RegionKind::Anon => {
                flags |= (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
                if d.flags & RFLAG_STACK != 0 {
                    flags |= libc::MAP_GROWSDOWN as u64;
                }
            }
            RegionKind::AnonShared => flags |= (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64,
            RegionKind::FilePrivate | RegionKind::FileShared => {
                flags |= if d.kind == RegionKind::FilePrivate {
                    libc::MAP_PRIVATE
                } else {
                    libc::MAP_SHARED
                } as u64;
                fd = fds.region[i] as u64;
                off = d.file_offset;
            }
        }
        b.call(
            libc::SYS_mmap,
            [d.start, d.len(), prot, flags, fd, off],
            Some(d.start),
            m,
        );
    }

    // 4. mm fields, auxv and (if allowed) the exe link.
    let mut auxv: Vec<u8> = Vec::new();
    for &(k, v) in &img.meta.auxv {
        auxv.extend_from_slice(&k.to_le_bytes());
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    auxv.extend_from_slice(&[0u8; 16]);
    let auxv_len = auxv.len() as u64;
    let auxv_addr = b.aux(&auxv);
    let mm = &l.mm;
    let mut map: Vec<u8> = Vec::new();
    for v in [
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_addr,
    ] {
        map.extend_from_slice(&v.to_le_bytes());
    }
    map.extend_from_slice(&(auxv_len as u32).to_le_bytes());
    map.extend_from_slice(&(fds.exe.map_or(u32::MAX, |f| f as u32)).to_le_bytes());
    let map_len = map.len() as u64;
    let map_addr = b.aux(&map);
    let m = b.msg("prctl(PR_SET_MM_MAP) failed");
    b.call(
        libc::SYS_prctl,
        [
            libc::PR_SET_MM as u64,
            libc::PR_SET_MM_MAP as u64,
            map_addr,
            map_len,
            0,
            0,
        ],
        None,
        m,
    );

    // 5. Thread pointer; forget the restorer's robust list and tid address (they pointed into
    // its own, now unmapped, thread block).
    let m = b.msg("restoring the thread pointer failed");
    b.call(
        libc::SYS_arch_prctl,
        [0x1002 /* ARCH_SET_FS */, img.meta.fs_base, 0, 0, 0, 0],
        None,
        m,
    );
    b.call(libc::SYS_set_robust_list, [0, 24, 0, 0, 0, 0], None, m);
    b.call(libc::SYS_set_tid_address, [0, 0, 0, 0, 0, 0], None, m);

    // 6. Close the restorer's descriptors, restore the signal mask, jump.
    let m = b.msg("closing the restorer's files failed");
    for &fd in &fds.close {
        b.call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0], None, m);
    }
    let mask_addr = b.aux(&img.meta.sigmask.to_le_bytes());
    let m = b.msg("restoring the signal mask failed");
    b.call(
        libc::SYS_rt_sigprocmask,
        [libc::SIG_SETMASK as u64, mask_addr, 0, 8, 0, 0],
        None,
        m,
    );
    b.recs
        .push([JUMP, l.rsp, l.rip, l.rax, 0, 0, 0, 0, 0, 0, 0]);

    // Lay out: aux, records, then the stack.
    while !b.aux.len().is_multiple_of(8) {
        b.aux.push(0);
    }
    let records = b.data_base + b.aux.len() as u64;
    let mut data = b.aux;
    for r in &b.recs {
        for w in r {
            data.extend_from_slice(&w.to_le_bytes());
        }
    }
    let stack_bottom = page_up(base + CODE_LEN + data.len() as u64);
    let stack_top = stack_bottom + STACK_LEN;
    Built {
        data,
        records,
        stack_top,
        len: stack_top - base,
    }
}

/// Whether [s, e) overlaps any of `ranges`.
pub(crate) fn overlaps(s: u64, e: u64, ranges: &[(u64, u64)]) -> bool {
    ranges.iter().any(|&(a, b)| s < b && a < e)
}

/// Every range the image will occupy (its regions and its vdso area).
pub(crate) fn image_ranges(img: &Image) -> Vec<(u64, u64)> {
    let l = &img.layout;
    let mut v: Vec<(u64, u64)> = img
        .regions
        .iter()
        .map(|r| (r.desc.start, r.desc.end))
        .collect();
    for r in [l.vvar, l.vvar_vclock, l.vdso] {
        if r.1 > r.0 {
            v.push(r);
        }
    }
    v
}
