//! `mpicr-test-rank`: a stand-in for an MPI rank, used by the launcher's tests and handy for
//! trying the control protocol by hand without the MPI runtime.
//!
//! Run it under `mpicr run -n N`. It connects to `MPICR_CONTROL`, registers as `MPICR_RANK`
//! with the data-plane address `test:<rank>`, waits for the REFRESH table, prints one line
//! per entry (`rank R sees rank Q: pid P state S addr A`), sends EXIT and exits 0.
//!
//! `MPICR_TEST_ABORT=R:CODE` makes rank R send ABORT with CODE instead and then wait to be
//! ended by the launcher. `MPICR_TEST_LINGER=SECONDS` makes every rank wait that long after
//! EXIT, so that `mpicr status` can see the `finalized` state.
//!
//! `MPICR_TEST_CHECKPOINT=1` makes every rank, after the table, serve the checkpoint protocol
//! until it is ended by a signal: it answers CHECKPOINT with its safepoint count (`rank + 1`
//! plus the checkpoints it took), CHECKPOINT_AT by writing a real part (one section `state`
//! holding `rank R safepoint T`) with the store's [`PartWriter`] into the staging directory
//! and answering PART_DONE (with `rank` messages in transit), and prints a line for every
//! CHECKPOINT_CANCEL. With it:
//! - `MPICR_TEST_CKPT_FAIL=R:REASON`: rank R answers CHECKPOINT with CHECKPOINT_FAILED;
//! - `MPICR_TEST_CKPT_DELAY_MS=N`: every rank waits N ms before each answer;
//! - `MPICR_TEST_CKPT_REQUEST=R`: rank R asks for one checkpoint itself (as an application
//!   may), on its own connection, before it serves;
//! - `MPICR_RESTART_DIR` set (by `mpicr restart`): every rank first prints
//!   `rank R restarted from epoch E: <its state section>`.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use store::{PartReader, PartWriter, part_file_name};
use wire::stream::{read_message, write_message};
use wire::{Abort, Exit, Message, PartDone, Register, SafepointCount};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpicr-test-rank: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set; run me under `mpicr run`"))
}

fn run() -> anyhow::Result<()> {
    let rank: u32 = var("MPICR_RANK")?
        .parse()
        .context("MPICR_RANK is not a number")?;
    let control = var("MPICR_CONTROL")?;
    let mut link =
        UnixStream::connect(&control).with_context(|| format!("cannot connect to {control}"))?;
    let register = Register {
        rank,
        pid: std::process::id(),
        host: var("MPICR_NODE")?,
        data_addr: format!("test:{rank}"),
    };
    // A refused peer may find the connection closed before its write; the reason is still
    // there to read.
    let sent = write_message(&mut link, &Message::Register(register));
    let answer = read_message(&mut link);
    if let (Err(e), Err(_)) = (&sent, &answer) {
        bail!("cannot register: {e}");
    }
    let table = match answer.context("no process table came")? {
        Message::Refresh(refresh) => refresh.table,
        Message::Error(sentence) => bail!("the coordinator refused: {sentence}"),
        other => bail!("expected the process table, got {:?}", other.command()),
    };
    for entry in &table {
        println!(
            "rank {rank} sees rank {}: pid {} state {} addr {}",
            entry.rank,
            entry.pid,
            entry.state.name(),
            entry.data_addr
        );
    }
    if let Some(code) = abort_code(rank)? {
        let abort = Abort {
            rank,
            code,
            reason: "test abort".into(),
        };
        write_message(&mut link, &Message::Abort(abort)).context("cannot send the abort")?;
        // The launcher ends this process; the read returns when it closes the connection.
        let _ = read_message(&mut link);
        std::thread::sleep(Duration::from_secs(600));
        bail!("the launcher did not end the job after the abort");
    }
    if std::env::var_os("MPICR_TEST_CHECKPOINT").is_some() {
        return serve_checkpoints(rank, &mut link);
    }
    write_message(&mut link, &Message::Exit(Exit { rank }))
        .context("cannot send the exit notice")?;
    if let Ok(seconds) = std::env::var("MPICR_TEST_LINGER") {
        std::thread::sleep(Duration::from_secs(
            seconds.parse().context("MPICR_TEST_LINGER")?,
        ));
    }
    Ok(())
}

/// The abort code for this rank from `MPICR_TEST_ABORT=R:CODE`, if it is this rank's turn.
fn abort_code(rank: u32) -> anyhow::Result<Option<i32>> {
    let Ok(spec) = std::env::var("MPICR_TEST_ABORT") else {
        return Ok(None);
    };
    let (who, code) = spec
        .split_once(':')
        .context("MPICR_TEST_ABORT must be RANK:CODE")?;
    let who: u32 = who.parse().context("MPICR_TEST_ABORT rank")?;
    (who == rank)
        .then(|| code.parse())
        .transpose()
        .context("MPICR_TEST_ABORT code")
}

/// The checkpoint protocol as a rank speaks it, until the launcher ends the rank.
fn serve_checkpoints(rank: u32, link: &mut UnixStream) -> anyhow::Result<()> {
    let job = var("MPICR_JOB")?;
    if let Ok(dir) = std::env::var("MPICR_RESTART_DIR") {
        let epoch = var("MPICR_RESTART_EPOCH")?;
        let path = std::path::Path::new(&dir).join(part_file_name(rank));
        let part =
            PartReader::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let state = part
            .section("state")
            .context("cannot read the state section")?;
        println!(
            "rank {rank} restarted from epoch {epoch}: {}",
            String::from_utf8_lossy(&state)
        );
    }
    let failure = std::env::var("MPICR_TEST_CKPT_FAIL").ok().and_then(|spec| {
        let (who, reason) = spec.split_once(':')?;
        (who.parse::<u32>().ok()? == rank).then(|| reason.to_owned())
    });
    let delay = match std::env::var("MPICR_TEST_CKPT_DELAY_MS") {
        Ok(ms) => Duration::from_millis(ms.parse().context("MPICR_TEST_CKPT_DELAY_MS")?),
        Err(_) => Duration::ZERO,
    };
    if std::env::var("MPICR_TEST_CKPT_REQUEST").is_ok_and(|who| who == rank.to_string()) {
        let request = Message::CheckpointRequest(wire::CheckpointRequest { terminate: false });
        write_message(link, &request).context("cannot ask for a checkpoint")?;
    }
    let mut taken = 0_u64;
    loop {
        let message = match read_message(link) {
            Ok(message) => message,
            // The launcher is gone or ends us: nothing more to serve.
            Err(_) => return Ok(()),
        };
        std::thread::sleep(delay);
        let answer = match message {
            Message::Checkpoint(c) => match &failure {
                Some(reason) => Message::CheckpointFailed(wire::CheckpointFailed {
                    epoch: c.epoch,
                    rank,
                    reason: reason.clone(),
                    retry: false,
                }),
                None => Message::SafepointCount(SafepointCount {
                    epoch: c.epoch,
                    rank,
                    count: u64::from(rank) + 1 + taken,
                }),
            },
            Message::CheckpointAt(at) => {
                let mut part = PartWriter::create(
                    std::path::Path::new(&at.dir),
                    &job,
                    at.epoch,
                    rank,
                    "self",
                )?;
                part.section(
                    "state",
                    format!("rank {rank} safepoint {}", at.safepoint).as_bytes(),
                )?;
                let info = part.finish()?;
                taken += 1;
                Message::PartDone(PartDone {
                    epoch: at.epoch,
                    rank,
                    file: info.file,
                    size: info.size,
                    crc32c: info.crc32c,
                    checkpointer: info.checkpointer,
                    in_transit: u64::from(rank),
                })
            }
            Message::CheckpointCancel(c) => {
                println!("rank {rank}: checkpoint {} cancelled", c.epoch);
                continue;
            }
            other => bail!("unexpected {:?} from the coordinator", other.command()),
        };
        write_message(link, &answer).context("cannot answer the coordinator")?;
    }
}
