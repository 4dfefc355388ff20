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

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use wire::stream::{read_message, write_message};
use wire::{Abort, Exit, Message, Register};

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
