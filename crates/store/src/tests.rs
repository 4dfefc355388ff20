//! Unit tests of the whole crate: formats, commit, crash safety, resolve, list, gc.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::*;

fn new_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Some(&dir.path().join("snapshots"))).unwrap();
    (dir, store)
}

fn payload(rank: u32, epoch: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + u64::from(rank) * 7 + epoch * 13) as u8)
        .collect()
}

fn input(job: &str, epoch: u64, parts: Vec<PartInfo>) -> ManifestInput {
    let ranks = parts.len() as u32;
    ManifestInput {
        job: job.into(),
        epoch,
        command: vec!["mpicr-heat".into(), "--steps".into(), "100".into()],
        env: vec![("MPICR_LOG".into(), "info".into())],
        cwd: PathBuf::from("/work"),
        placement: (0..ranks).map(|r| (r, "node0".to_string())).collect(),
        parts,
        in_transit_messages: 5,
        safepoint: 42,
        transport: "shm".into(),
        extra: [("crs".to_string(), "self".to_string())].into(),
    }
}

/// Writes the parts of `ranks` ranks into `pending` and returns what they report.
fn write_parts(pending: &Pending, ranks: u32, size: usize) -> Vec<PartInfo> {
    (0..ranks)
        .map(|r| {
            let mut w = pending.part_writer(r, "self").unwrap();
            w.section("state", &payload(r, pending.epoch(), size))
                .unwrap();
            w.section("meta", format!("rank {r}").as_bytes()).unwrap();
            w.finish().unwrap()
        })
        .collect()
}

fn commit(store: &Store, job: &str, epoch: u64, ranks: u32) -> Snapshot {
    let p = store.begin(job, epoch).unwrap();
    let parts = write_parts(&p, ranks, 100);
    p.commit(input(job, epoch, parts)).unwrap()
}

fn dot_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.') && n != ".lock")
        .collect();
    v.sort();
    v
}

fn latest_link(store: &Store, job: &str) -> Option<String> {
    std::fs::read_link(store.job_dir(job).join("latest"))
        .ok()
        .map(|t| t.to_str().unwrap().to_owned())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- parts

#[test]
fn part_round_trip_in_memory_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let big = payload(3, 9, 3 << 20);
    let mut w = PartWriter::create(dir.path(), "heat", 9, 3, "self").unwrap();
    w.section("small", b"hello").unwrap();
    w.section("empty", b"").unwrap();
    let mut sw = w.section_writer("streamed", 10).unwrap();
    sw.write_all(b"01234").unwrap();
    sw.write_all(b"56789").unwrap();
    sw.finish().unwrap();
    w.section_from_reader("big", big.len() as u64, &mut &big[..])
        .unwrap();
    w.section("ünïcode name", &[1, 2, 3]).unwrap();
    let info = w.finish().unwrap();

    assert_eq!(info.rank, 3);
    assert_eq!(info.file, "rank-3.part");
    assert_eq!(info.checkpointer, "self");
    let path = dir.path().join("rank-3.part");
    assert_eq!(info.size, std::fs::metadata(&path).unwrap().len());
    assert_eq!(mode(&path), 0o600);
    let names: Vec<&str> = info.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["small", "empty", "streamed", "big", "ünïcode name"]);

    let r = PartReader::open(&path).unwrap();
    assert_eq!(
        (r.rank(), r.epoch(), r.job(), r.checkpointer()),
        (3, 9, "heat", "self")
    );
    assert_eq!(r.format_version(), PART_FORMAT_VERSION);
    assert_eq!(r.crc32c(), info.crc32c);
    assert_eq!(r.size(), info.size);
    assert_eq!(r.sections().collect::<Vec<_>>(), names);
    assert!(r.section_infos().eq(info.sections.iter()));
    assert_eq!(r.section("small").unwrap(), b"hello");
    assert_eq!(r.section("empty").unwrap(), b"");
    assert_eq!(r.section("streamed").unwrap(), b"0123456789");
    assert_eq!(r.section("ünïcode name").unwrap(), [1, 2, 3]);
    assert_eq!(r.section_len("big").unwrap(), big.len() as u64);
    let mut back = vec![0u8; big.len()];
    r.section_into("big", &mut back).unwrap();
    assert_eq!(back, big);
    let mut streamed = Vec::new();
    r.section_reader("big")
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert_eq!(streamed, big);
    r.verify_sections().unwrap();
    assert!(matches!(
        r.section("nope"),
        Err(StoreError::NoSection { .. })
    ));
    assert!(matches!(
        r.section_into("small", &mut [0u8; 4]),
        Err(StoreError::Usage { .. })
    ));
}

#[test]
fn part_writer_refuses_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = PartWriter::create(dir.path(), "heat", 1, 0, "self").unwrap();
    w.section("a", b"x").unwrap();
    assert!(matches!(
        w.section("a", b"y"),
        Err(StoreError::Usage { .. })
    ));
    assert!(matches!(
        w.section("", b"y"),
        Err(StoreError::BadName { .. })
    ));
    assert!(matches!(
        w.section("a\nb", b"y"),
        Err(StoreError::BadName { .. })
    ));
    assert!(matches!(
        w.section(&"n".repeat(256), b"y"),
        Err(StoreError::BadName { .. })
    ));
    // Too many bytes for a streamed section: refused, the part stays usable.
    {
        let mut sw = w.section_writer("b", 2).unwrap();
        assert!(sw.write_all(b"xyz").is_err());
        sw.write_all(b"xy").unwrap();
        sw.finish().unwrap();
    }
    // Too few: the part is spoilt.
    let mut sw = w.section_writer("c", 4).unwrap();
    sw.write_all(b"xy").unwrap();
    assert!(matches!(sw.finish(), Err(StoreError::Usage { .. })));
    assert!(matches!(w.section("d", b""), Err(StoreError::Usage { .. })));
    assert!(w.finish().is_err());

    // A reader shorter than announced.
    let mut w = PartWriter::create(dir.path(), "heat", 1, 1, "self").unwrap();
    assert!(matches!(
        w.section_from_reader("s", 10, &mut &b"abc"[..]),
        Err(StoreError::Usage { .. })
    ));
    // An existing part is never overwritten; bad names are refused.
    assert!(matches!(
        PartWriter::create(dir.path(), "heat", 1, 0, "self"),
        Err(StoreError::Io { .. })
    ));
    assert!(matches!(
        PartWriter::create(dir.path(), "../x", 1, 5, "self"),
        Err(StoreError::BadName { kind: "job", .. })
    ));
    assert!(matches!(
        PartWriter::create(dir.path(), "heat", 1, 5, "se lf"),
        Err(StoreError::BadName {
            kind: "checkpointer",
            ..
        })
    ));
}

fn small_part(dir: &Path) -> (PathBuf, PartInfo, Vec<u8>) {
    let mut w = PartWriter::create(dir, "heat", 2, 0, "self").unwrap();
    w.section("state", &payload(0, 2, 40)).unwrap();
    w.section("e", b"").unwrap();
    w.section("meta", b"abc").unwrap();
    let info = w.finish().unwrap();
    let path = dir.join("rank-0.part");
    let bytes = std::fs::read(&path).unwrap();
    (path, info, bytes)
}

#[test]
fn every_single_byte_corruption_of_a_part_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, good) = small_part(dir.path());
    for at in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            std::fs::write(&path, &bad).unwrap();
            let err = PartReader::open(&path).expect_err(&format!("byte {at} ^ {flip:#x}"));
            assert!(err.is_damage(), "byte {at}: {err}");
        }
    }
    std::fs::write(&path, &good).unwrap();
    PartReader::open(&path).unwrap();
}

#[test]
fn every_truncation_of_a_part_is_detected_and_so_is_an_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, good) = small_part(dir.path());
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).unwrap();
        let err = PartReader::open(&path).expect_err(&format!("length {len}"));
        assert!(err.is_damage(), "length {len}: {err}");
    }
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&path, &longer).unwrap();
    assert!(PartReader::open(&path).unwrap_err().is_damage());
}

#[test]
fn every_corruption_and_truncation_of_a_committed_part_is_detected() {
    let (_d, store) = new_store();
    let snap = {
        let p = store.begin("heat", 1).unwrap();
        let mut w = p.part_writer(0, "self").unwrap();
        w.section("state", &payload(0, 1, 40)).unwrap();
        w.section("meta", b"abc").unwrap();
        let info = w.finish().unwrap();
        p.commit(input("heat", 1, vec![info])).unwrap()
    };
    let path = snap.part_path(0).unwrap();
    let good = std::fs::read(&path).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        assert!(snap.read_part(0).unwrap_err().is_damage(), "byte {at}");
        assert!(snap.verify().unwrap_err().is_damage(), "byte {at}");
    }
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).unwrap();
        assert!(
            matches!(snap.read_part(0), Err(StoreError::Truncated { .. })),
            "length {len}"
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        snap.read_part(0),
        Err(StoreError::PartMissing { rank: 0, .. })
    ));
    assert!(matches!(
        snap.read_part(1),
        Err(StoreError::PartMissing { rank: 1, .. })
    ));
    std::fs::write(&path, &good).unwrap();
    snap.verify().unwrap();
}

#[test]
fn a_section_changed_after_open_fails_its_own_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, good) = small_part(dir.path());
    let r = PartReader::open(&path).unwrap();
    let mut bad = good.clone();
    // A byte of the data of `state`: magic 8, version 4, rank 4, epoch 8, job 2+4,
    // checkpointer 2+4, name 2+5, length 8.
    let data_at = 8 + 4 + 4 + 8 + 2 + 4 + 2 + 4 + 2 + 5 + 8;
    bad[data_at + 3] ^= 1;
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&bad).unwrap();
    drop(f);
    assert!(matches!(
        r.section("state"),
        Err(StoreError::Corrupt { .. })
    ));
    let mut sink = Vec::new();
    let e = r
        .section_reader("state")
        .unwrap()
        .read_to_end(&mut sink)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(r.verify_sections().unwrap_err().is_damage());
    assert_eq!(r.section("meta").unwrap(), b"abc");
}

#[test]
fn a_part_of_an_unknown_format_version_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, mut bytes) = small_part(dir.path());
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = PartReader::open(&path).unwrap_err();
    assert!(
        matches!(e, StoreError::UnsupportedVersion { found: 7, .. }),
        "{e}"
    );
    std::fs::write(&path, b"#!/bin/sh\necho hello, not a part\n").unwrap();
    let e = PartReader::open(&path).unwrap_err();
    assert!(e.to_string().contains("magic MPCRPART"), "{e}");
}

// ---------------------------------------------------------------- manifests

#[test]
fn manifest_round_trip() {
    let (_d, store) = new_store();
    let p = store.begin("heat", 4).unwrap();
    let parts = write_parts(&p, 3, 1000);
    let want = input("heat", 4, parts.clone());
    let snap = p.commit(want.clone()).unwrap();
    let m = Manifest::read(&snap.path().join(MANIFEST_FILE)).unwrap();
    assert_eq!(&m, snap.manifest());
    assert_eq!(m.format_version, MANIFEST_FORMAT_VERSION);
    assert_eq!((m.job.as_str(), m.epoch, m.ranks()), ("heat", 4, 3));
    assert_eq!(m.command, want.command);
    assert_eq!(m.env, want.env);
    assert_eq!(m.cwd, "/work");
    assert_eq!(m.placement, want.placement);
    assert_eq!(m.parts, parts);
    assert_eq!(
        (m.in_transit_messages, m.safepoint, m.transport.as_str()),
        (5, 42, "shm")
    );
    assert_eq!(m.extra, want.extra);
    assert!(m.created > 1_600_000_000);
    assert_eq!(m.checkpointers(), ["self", "self", "self"]);
    for r in 0..3 {
        let part = snap.read_part(r).unwrap();
        assert_eq!(part.section("state").unwrap(), payload(r, 4, 1000));
    }
    snap.verify().unwrap();
    assert_eq!(snap.name(), "heat.4");
}

#[test]
fn every_single_byte_corruption_and_truncation_of_a_manifest_is_detected() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 2);
    let path = store.job_dir("heat").join("1").join(MANIFEST_FILE);
    let good = std::fs::read(&path).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let e = store.resolve("heat.1").expect_err(&format!("byte {at}"));
        assert!(e.is_damage(), "byte {at}: {e}");
        assert!(store.resolve("heat").unwrap_err().is_damage());
    }
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).unwrap();
        let e = store.resolve("heat.1").expect_err(&format!("length {len}"));
        assert!(e.is_damage(), "length {len}: {e}");
    }
    let mut longer = good.clone();
    longer.push(b'\n');
    std::fs::write(&path, &longer).unwrap();
    assert!(store.resolve("heat.1").unwrap_err().is_damage());
    std::fs::write(&path, &good).unwrap();
    store.resolve("heat.1").unwrap().verify().unwrap();
}

#[test]
fn commit_refuses_what_does_not_match_the_disk() {
    let (_d, store) = new_store();
    // A rank without a part.
    let p = store.begin("heat", 1).unwrap();
    let staging = p.path().to_owned();
    let mut parts = write_parts(&p, 3, 10);
    parts.remove(1);
    let e = p.commit(input("heat", 1, parts)).unwrap_err();
    assert!(e.to_string().contains("rank 1 has no part"), "{e}");
    assert!(
        !staging.exists(),
        "a failed commit removes its staging directory"
    );

    // A size that is not what the writer wrote.
    let p = store.begin("heat", 1).unwrap();
    let mut parts = write_parts(&p, 2, 10);
    parts[1].size += 1;
    let e = p.commit(input("heat", 1, parts)).unwrap_err();
    assert!(matches!(e, StoreError::BadCommit { .. }), "{e}");

    // A checksum that is not the file's.
    let p = store.begin("heat", 1).unwrap();
    let mut parts = write_parts(&p, 2, 10);
    parts[0].crc32c ^= 1;
    assert!(matches!(
        p.commit(input("heat", 1, parts)),
        Err(StoreError::BadCommit { .. })
    ));

    // Another epoch's manifest.
    let p = store.begin("heat", 1).unwrap();
    let parts = write_parts(&p, 1, 10);
    assert!(matches!(
        p.commit(input("heat", 2, parts)),
        Err(StoreError::BadCommit { .. })
    ));

    // The report of a part written for another epoch.
    let other = store.begin("heat", 9).unwrap();
    let foreign = write_parts(&other, 1, 10);
    let p = store.begin("heat", 1).unwrap();
    std::fs::copy(
        other.path().join("rank-0.part"),
        p.path().join("rank-0.part"),
    )
    .unwrap();
    assert!(matches!(
        p.commit(input("heat", 1, foreign)),
        Err(StoreError::BadCommit { .. })
    ));
    drop(other);

    assert!(store.list().unwrap().is_empty());
    assert_eq!(dot_entries(&store.job_dir("heat")), Vec::<String>::new());
}

// ---------------------------------------------------------------- resolve, list

#[test]
fn resolve_by_name_by_job_and_by_path() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 2);
    commit(&store, "heat", 2, 2);
    commit(&store, "heat.v2", 7, 1);
    commit(&store, "ring", 3, 4);

    assert_eq!(store.resolve("heat.1").unwrap().epoch(), 1);
    assert_eq!(store.resolve("heat").unwrap().epoch(), 2);
    assert_eq!(store.resolve("heat.v2").unwrap().name(), "heat.v2.7");
    assert_eq!(store.resolve("heat.v2.7").unwrap().job(), "heat.v2");
    assert_eq!(store.resolve("ring").unwrap().manifest().ranks(), 4);

    let dir = store.job_dir("heat").join("1");
    let by_path = store.resolve(dir.to_str().unwrap()).unwrap();
    assert_eq!(by_path.name(), "heat.1");
    let by_manifest = store
        .resolve(dir.join(MANIFEST_FILE).to_str().unwrap())
        .unwrap();
    assert_eq!(by_manifest.name(), "heat.1");
    let via_latest = store
        .resolve(store.job_dir("heat").join("latest").to_str().unwrap())
        .unwrap();
    assert_eq!(via_latest.name(), "heat.2");

    // A copy elsewhere resolves by path.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("kept");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    let s = store.resolve(copy.to_str().unwrap()).unwrap();
    s.verify().unwrap();
    s.expect_job("heat").unwrap();
    assert!(matches!(
        s.expect_job("ring"),
        Err(StoreError::Foreign { .. })
    ));

    // Not found: the message names what was searched.
    let e = store.resolve("heat.9").unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }));
    let msg = e.to_string();
    assert!(msg.contains("no snapshot `heat.9`"), "{msg}");
    assert!(
        msg.contains(&store.job_dir("heat").join("9").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&store.job_dir("heat.9").display().to_string()),
        "{msg}"
    );
    assert!(matches!(
        store.resolve("nojob"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve("../x"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve(elsewhere.path().join("nothing").to_str().unwrap()),
        Err(StoreError::NotFound { .. })
    ));
    // A directory that is not a snapshot.
    assert!(matches!(
        store.resolve(elsewhere.path().to_str().unwrap()),
        Err(StoreError::NotSnapshot { .. })
    ));
}

#[test]
fn another_jobs_snapshot_in_place_of_the_expected_one_is_refused() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 1);
    commit(&store, "ring", 1, 1);
    // Ring's snapshot moved under heat's name.
    let heat1 = store.job_dir("heat").join("1");
    std::fs::remove_dir_all(&heat1).unwrap();
    std::fs::rename(store.job_dir("ring").join("1"), &heat1).unwrap();
    for name in ["heat.1", "heat", heat1.to_str().unwrap()] {
        let e = store.resolve(name).unwrap_err();
        assert!(matches!(e, StoreError::Foreign { .. }), "{name}: {e}");
        assert!(e.to_string().contains("job `ring`"), "{e}");
    }
    // A part from another snapshot in place of the right one.
    commit(&store, "ring", 2, 1);
    let heat2 = commit(&store, "heat", 2, 1);
    std::fs::copy(
        store.job_dir("ring").join("2").join("rank-0.part"),
        heat2.part_path(0).unwrap(),
    )
    .unwrap();
    assert!(heat2.read_part(0).unwrap_err().is_damage());
}

#[test]
fn list_shows_committed_snapshots_newest_first() {
    let (_d, store) = new_store();
    assert!(store.list().unwrap().is_empty());
    commit(&store, "heat", 1, 2);
    commit(&store, "ring", 5, 3);
    commit(&store, "heat", 2, 2);
    let _in_flight = store.begin("heat", 3).unwrap();
    let list = store.list().unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    // Same second: by epoch, newest first.
    assert_eq!(names, ["ring.5", "heat.2", "heat.1"]);
    let ring = &list[0];
    assert_eq!(ring.ranks, 3);
    assert_eq!(ring.checkpointers, ["self", "self", "self"]);
    assert!(ring.latest);
    assert!(list[1].latest && !list[2].latest);
    assert_eq!(ring.path, store.job_dir("ring").join("5"));
    let on_disk: u64 = std::fs::read_dir(&ring.path)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(ring.size, on_disk);
    assert_eq!(ring.in_transit_messages, 5);
    // A process image beside the parts is part of the snapshot's size.
    std::fs::write(ring.path.join("rank-0.image"), vec![1u8; 1000]).unwrap();
    assert_eq!(store.list().unwrap()[0].size, on_disk + 1000);

    // A damaged manifest: left out of the list, reported by scan.
    std::fs::write(store.job_dir("heat").join("1").join(MANIFEST_FILE), b"junk").unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    let (_, bad) = store.scan().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, store.job_dir("heat").join("1"));
    assert_eq!(store.jobs().unwrap(), ["heat", "ring"]);
    assert_eq!(store.epochs("heat").unwrap(), [1, 2]);
    assert_eq!(store.next_epoch("heat").unwrap(), 4);
    assert_eq!(store.next_epoch("new").unwrap(), 1);
}

// ---------------------------------------------------------------- gc

#[test]
fn gc_keeps_the_newest_per_job() {
    let (_d, store) = new_store();
    for e in 1..=5 {
        commit(&store, "heat", e, 1);
    }
    commit(&store, "ring", 1, 1);
    commit(&store, "ring", 2, 1);
    let mut removed = store.gc(2, Some("heat")).unwrap();
    removed.sort();
    let heat = store.job_dir("heat");
    assert_eq!(removed, [heat.join("1"), heat.join("2"), heat.join("3")]);
    assert_eq!(store.epochs("heat").unwrap(), [4, 5]);
    assert_eq!(store.epochs("ring").unwrap(), [1, 2]);
    // keep 0 still keeps the newest; all jobs.
    let removed = store.gc(0, None).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(store.epochs("heat").unwrap(), [5]);
    assert_eq!(store.epochs("ring").unwrap(), [2]);
    assert_eq!(latest_link(&store, "heat").as_deref(), Some("5"));
    store.resolve("heat").unwrap().verify().unwrap();
    assert_eq!(dot_entries(&heat), Vec::<String>::new());
    assert!(store.gc(1, None).unwrap().is_empty());
    assert!(store.gc(1, Some("unknown")).unwrap().is_empty());
}

#[test]
fn gc_keeps_a_record_of_each_removed_snapshot_with_node_copies_until_told() {
    let (_d, store) = new_store();
    for epoch in 1..=3 {
        let p = store.begin("heat", epoch).unwrap();
        let mut parts = write_parts(&p, 2, 10);
        for part in &mut parts {
            part.nodes = vec!["a".into(), "b".into()];
        }
        p.commit(input("heat", epoch, parts)).unwrap();
    }
    commit(&store, "ring", 1, 1);
    commit(&store, "ring", 2, 1);
    let removed = store.gc_recording_node_copies(1, None).unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert_eq!(store.epochs("heat").unwrap(), [3]);
    let (records, damaged) = store.node_records(None).unwrap();
    assert!(damaged.is_empty(), "{damaged:?}");
    let epochs: Vec<u64> = records.iter().map(|r| r.manifest().epoch).collect();
    assert_eq!(
        epochs,
        [1, 2],
        "only snapshots with node copies leave a record"
    );
    for record in &records {
        assert_eq!(record.manifest().job, "heat");
        assert_eq!(dot_entries(record.path()), Vec::<String>::new());
        let names: Vec<_> = std::fs::read_dir(record.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [MANIFEST_FILE], "only the manifest stays");
    }
    // Records are neither snapshots nor removed by a later gc; forgetting removes them.
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.gc_recording_node_copies(1, None).unwrap().is_empty());
    let mut records = records.into_iter();
    records.next().unwrap().forget().unwrap();
    let (left, _) = store.node_records(Some("heat")).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].manifest().epoch, 2);
    // The coordinator's own gc keeps no records.
    let p = store.begin("heat", 4).unwrap();
    let mut parts = write_parts(&p, 1, 10);
    parts[0].nodes = vec!["a".into()];
    p.commit(input("heat", 4, parts)).unwrap();
    store.gc(1, Some("heat")).unwrap();
    assert_eq!(store.node_records(Some("heat")).unwrap().0.len(), 1);
}

#[test]
fn gc_never_trades_a_good_snapshot_for_a_damaged_one() {
    let (_d, store) = new_store();
    for e in 1..=3 {
        commit(&store, "heat", e, 1);
    }
    let heat = store.job_dir("heat");
    std::fs::write(heat.join("3").join(MANIFEST_FILE), b"damaged").unwrap();
    assert!(store.resolve("heat").unwrap_err().is_damage());
    let removed = store.gc(1, None).unwrap();
    assert_eq!(removed, [heat.join("1")]);
    assert_eq!(store.epochs("heat").unwrap(), [2, 3]);
    assert_eq!(latest_link(&store, "heat").as_deref(), Some("2"));
    store.resolve("heat.2").unwrap().verify().unwrap();
}

#[test]
fn gc_removes_abandoned_staging_and_trash_but_not_live_writers() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 1);
    let heat = store.job_dir("heat");
    // A writer that is gone: stopped as by a crash.
    let p = store.begin("heat", 2).unwrap();
    let parts = write_parts(&p, 1, 10);
    let dead = p.path().to_owned();
    assert!(
        p.commit_with(input("heat", 2, parts), |_| ControlFlow::Break(()))
            .is_err()
    );
    assert!(dead.exists());
    // A writer that is alive.
    let live = store.begin("heat", 3).unwrap();
    write_parts(&live, 1, 10);
    // An interrupted removal.
    let trash = heat.join(".trash-0-12345");
    std::fs::create_dir(&trash).unwrap();
    std::fs::write(trash.join("manifest"), b"half").unwrap();

    assert!(store.list().unwrap().iter().all(|s| s.epoch == 1));
    let removed = store.gc(5, None).unwrap();
    assert!(
        removed.contains(&dead) && removed.contains(&trash),
        "{removed:?}"
    );
    assert!(!dead.exists() && !trash.exists());
    assert!(live.path().exists());
    let parts = write_parts_reported(&live);
    live.commit(input("heat", 3, parts)).unwrap();
    assert_eq!(store.resolve("heat").unwrap().epoch(), 3);
    assert_eq!(store.epochs("heat").unwrap(), [1, 3]);
}

/// The parts already written into `p` (by `write_parts`), as their writers reported them.
fn write_parts_reported(p: &Pending) -> Vec<PartInfo> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p.path()).unwrap() {
        let path = e.unwrap().path();
        let r = PartReader::open(&path).unwrap();
        out.push(PartInfo {
            rank: r.rank(),
            checkpointer: r.checkpointer().into(),
            file: path.file_name().unwrap().to_str().unwrap().into(),
            size: r.size(),
            crc32c: r.crc32c(),
            sections: r.section_infos().cloned().collect(),
            nodes: Vec::new(),
        });
    }
    out
}

// ---------------------------------------------------------------- crash safety

#[test]
fn a_commit_stopped_after_any_step_leaves_the_previous_snapshot_usable() {
    for stop in CommitStep::ALL {
        let (_d, store) = new_store();
        let heat = store.job_dir("heat");
        commit(&store, "heat", 1, 3);
        let p = store.begin("heat", 2).unwrap();
        let staging = p.path().to_owned();
        let parts = write_parts(&p, 3, 5000);
        let mut seen = Vec::new();
        let e = p
            .commit_with(input("heat", 2, parts), |step| {
                seen.push(step);
                if step == stop {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::CommitStopped { step } if step == stop));
        let n = CommitStep::ALL.iter().position(|&s| s == stop).unwrap();
        assert_eq!(seen, CommitStep::ALL[..=n]);

        // The previous snapshot resolves and verifies.
        let one = store.resolve("heat.1").unwrap();
        one.verify().unwrap();
        // The newest is the new one once committed, else the previous one, and complete.
        let newest = store.resolve("heat").unwrap();
        assert_eq!(
            newest.epoch(),
            if stop.is_committed() { 2 } else { 1 },
            "{stop}"
        );
        newest.verify().unwrap();
        // `latest` names a complete snapshot.
        let latest = latest_link(&store, "heat").unwrap();
        Snapshot::open(&heat.join(&latest))
            .unwrap()
            .verify()
            .unwrap();
        let listed: Vec<u64> = store.list().unwrap().iter().map(|s| s.epoch).collect();
        assert_eq!(
            listed,
            if stop.is_committed() {
                vec![2, 1]
            } else {
                vec![1]
            }
        );
        assert_eq!(staging.exists(), !stop.is_committed());

        // gc cleans the leftovers and repairs `latest`.
        store.gc(10, None).unwrap();
        assert_eq!(dot_entries(&heat), Vec::<String>::new(), "{stop}");
        assert_eq!(
            latest_link(&store, "heat").unwrap(),
            store.resolve("heat").unwrap().epoch().to_string()
        );
        store.resolve("heat.1").unwrap().verify().unwrap();

        // And the job goes on.
        let next = store.next_epoch("heat").unwrap();
        commit(&store, "heat", next, 3).verify().unwrap();
        assert_eq!(latest_link(&store, "heat").unwrap(), next.to_string());
    }
}

#[test]
fn leftovers_of_a_crash_inside_a_step_are_harmless() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 1);
    let heat = store.job_dir("heat");
    // A half-written manifest.tmp and a half-written part in a dead writer's staging dir.
    let staging = heat.join(".staging-2-999999");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("manifest.tmp"), b"MPCRSNAP\x01\0\0\0").unwrap();
    std::fs::write(staging.join("rank-0.part"), b"MPCRPART").unwrap();
    // A temporary latest link never renamed.
    std::os::unix::fs::symlink("2", heat.join(".latest.tmp-999999")).unwrap();
    // A gc interrupted after moving epoch 0 to the trash.
    std::fs::create_dir(heat.join(".trash-0-999999")).unwrap();
    assert_eq!(store.resolve("heat").unwrap().epoch(), 1);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(matches!(
        store.resolve(staging.to_str().unwrap()),
        Err(StoreError::NotSnapshot { .. })
    ));
    assert_eq!(store.next_epoch("heat").unwrap(), 3);
    // `latest` lost entirely: gc puts it back.
    std::fs::remove_file(heat.join("latest")).unwrap();
    assert_eq!(store.resolve("heat").unwrap().epoch(), 1);
    let removed = store.gc(1, None).unwrap();
    assert_eq!(removed.len(), 3);
    assert_eq!(dot_entries(&heat), Vec::<String>::new());
    assert_eq!(latest_link(&store, "heat").as_deref(), Some("1"));
}

// ---------------------------------------------------------------- concurrency, epochs

#[test]
fn two_epochs_written_at_once_commit_in_any_order() {
    let (_d, store) = new_store();
    let p1 = store.begin("heat", 1).unwrap();
    let p2 = store.begin("heat", 2).unwrap();
    assert_ne!(p1.path(), p2.path());
    let (i1, i2) = std::thread::scope(|s| {
        let a = s.spawn(|| write_parts(&p1, 4, 20_000));
        let b = s.spawn(|| write_parts(&p2, 4, 20_000));
        (a.join().unwrap(), b.join().unwrap())
    });
    // The later epoch commits first; the earlier one must not take `latest` back.
    p2.commit(input("heat", 2, i2)).unwrap();
    p1.commit(input("heat", 1, i1)).unwrap();
    assert_eq!(latest_link(&store, "heat").as_deref(), Some("2"));
    assert_eq!(store.resolve("heat").unwrap().epoch(), 2);
    store.resolve("heat.1").unwrap().verify().unwrap();

    // Concurrent commits from threads.
    let p3 = store.begin("heat", 3).unwrap();
    let p4 = store.begin("heat", 4).unwrap();
    let i3 = write_parts(&p3, 2, 100);
    let i4 = write_parts(&p4, 2, 100);
    std::thread::scope(|s| {
        s.spawn(|| p3.commit(input("heat", 3, i3)).unwrap());
        s.spawn(|| p4.commit(input("heat", 4, i4)).unwrap());
    });
    assert_eq!(latest_link(&store, "heat").as_deref(), Some("4"));
    assert_eq!(store.epochs("heat").unwrap(), [1, 2, 3, 4]);
}

#[test]
fn an_epoch_is_written_once() {
    let (_d, store) = new_store();
    commit(&store, "heat", 1, 1);
    assert!(matches!(
        store.begin("heat", 1),
        Err(StoreError::EpochTaken { epoch: 1, .. })
    ));
    let p = store.begin("heat", 2).unwrap();
    assert!(matches!(
        store.begin("heat", 2),
        Err(StoreError::EpochTaken { epoch: 2, .. })
    ));
    // Another process's live staging dir of the same epoch (simulated: locked here).
    let other = store.job_dir("heat").join(".staging-2-1");
    std::fs::create_dir(&other).unwrap();
    drop(p);
    let _hold = crate::fsutil::Lock::try_dir(&other).unwrap().unwrap();
    assert!(matches!(
        store.begin("heat", 2),
        Err(StoreError::EpochTaken { .. })
    ));
    drop(_hold);
    // Two writers raced to the same epoch: the second commit is refused, the first stays.
    let p = store.begin("heat", 2).unwrap();
    let parts = write_parts(&p, 1, 10);
    let first = p.commit(input("heat", 2, parts)).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
    assert!(matches!(
        store.begin("heat", 2),
        Err(StoreError::EpochTaken { .. })
    ));
    first.verify().unwrap();
    assert!(matches!(
        store.begin("../evil", 1),
        Err(StoreError::BadName { .. })
    ));
    assert!(matches!(
        store.begin(".hidden", 1),
        Err(StoreError::BadName { .. })
    ));
}

#[test]
fn abandon_and_drop_remove_the_staging_directory() {
    let (_d, store) = new_store();
    let p = store.begin("heat", 1).unwrap();
    write_parts(&p, 2, 10);
    let path = p.path().to_owned();
    p.abandon();
    assert!(!path.exists());
    let p = store.begin("heat", 1).unwrap();
    let path = p.path().to_owned();
    drop(p);
    assert!(!path.exists());
    assert!(store.list().unwrap().is_empty());
}

// ---------------------------------------------------------------- permissions

#[test]
fn files_are_0600_and_directories_0700() {
    let (d, store) = new_store();
    assert_eq!(mode(store.root()), 0o700);
    let p = store.begin("heat", 1).unwrap();
    assert_eq!(mode(p.path()), 0o700);
    let parts = write_parts(&p, 2, 10);
    let snap = p.commit(input("heat", 1, parts)).unwrap();
    assert_eq!(mode(&store.job_dir("heat")), 0o700);
    assert_eq!(mode(snap.path()), 0o700);
    assert_eq!(mode(&snap.path().join(MANIFEST_FILE)), 0o600);
    for r in 0..2 {
        assert_eq!(mode(&snap.part_path(r).unwrap()), 0o600);
    }
    // A nested default-like root is created 0700 all the way.
    let nested = d.path().join("a/b/c");
    Store::open(Some(&nested)).unwrap();
    assert_eq!(mode(&d.path().join("a")), 0o700);
    assert_eq!(mode(&nested), 0o700);
}

#[test]
fn a_root_open_to_others_or_owned_by_someone_else_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("snaps");
    std::fs::create_dir(&root).unwrap();
    for m in [0o755, 0o750, 0o701, 0o707] {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(m)).unwrap();
        let e = Store::open(Some(&root)).unwrap_err();
        assert!(
            matches!(e, StoreError::RootMode { mode, .. } if mode == m),
            "{e}"
        );
        assert!(e.to_string().contains("0700"));
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    Store::open(Some(&root)).unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        Store::open(Some(&file)),
        Err(StoreError::Io { .. } | StoreError::NotDirectory { .. })
    ));
    if rustix::process::getuid().is_root() {
        // As root, hand the directory to `nobody` and expect a refusal.
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), 65534);
        let e = Store::open(Some(&root)).unwrap_err();
        assert!(
            matches!(e, StoreError::RootOwner { owner: 65534, .. }),
            "{e}"
        );
    }
}

#[test]
fn default_root_follows_xdg_state_home() {
    // Read-only look at the rule; the environment is not changed (tests run in parallel).
    match Store::default_root() {
        Ok(root) => assert!(root.ends_with("mpicr/snapshots"), "{}", root.display()),
        Err(e) => assert!(matches!(e, StoreError::NoDefaultRoot), "{e}"),
    }
}

#[test]
fn recorded_durations_are_listed_and_old_manifests_read_without_them() {
    let (_dir, store) = new_store();
    // A manifest without durations (as written before they were recorded).
    commit(&store, "dur", 1, 1);
    let p = store.begin("dur", 2).unwrap();
    let parts = write_parts(&p, 1, 100);
    let mut with = input("dur", 2, parts);
    with.extra
        .insert(crate::EXTRA_DURATION_MS.to_owned(), "1234".to_owned());
    with.extra
        .insert(crate::EXTRA_STALL_BOUND_MS.to_owned(), "1200".to_owned());
    p.commit(with).unwrap();
    let list = store.list().unwrap();
    let by_epoch = |e: u64| list.iter().find(|s| s.epoch == e).unwrap();
    assert_eq!(by_epoch(1).duration_ms, None);
    assert_eq!(by_epoch(1).stall_bound_ms, None);
    assert_eq!(by_epoch(2).duration_ms, Some(1234));
    assert_eq!(by_epoch(2).stall_bound_ms, Some(1200));
    let m = store.resolve("dur.2").unwrap().manifest().clone();
    assert_eq!(m.extra_u64(crate::EXTRA_DURATION_MS), Some(1234));
    assert_eq!(m.extra_u64("crs"), None, "not a number");
    assert_eq!(m.extra_u64("nothing"), None);
}
