//! Forwarding a rank's stdout or stderr to the launcher's, one line at a time, so that lines
//! of different ranks never mix inside one line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};

/// Longest piece written at once. A line longer than this (or output without any newline) is
/// passed on in pieces of this size so that memory stays bounded.
const MAX_PIECE: u64 = 64 * 1024;

/// Where a rank's output goes: one of this process's streams, or (in a node daemon) a channel
/// to the coordinator, as `(rank, stream, bytes)` with stream 1 for stdout and 2 for stderr.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    Stdout,
    Stderr,
    Remote {
        rank: u32,
        stream: u8,
        to: Sender<RemotePiece>,
    },
}

/// A piece of a rank's output on its way to the coordinator: `(rank, stream, bytes)`.
pub type RemotePiece = (u32, u8, Vec<u8>);

/// A copy of a rank's output: `(rank, line)` for every line once it has been passed on, the
/// line without its newline and without the `[rank] ` prefix.
pub type OutputCopy = Sender<(u32, String)>;

/// Starts a thread that copies `source` to `sink`, putting `prefix` before every line. A last
/// line without a newline is still printed, and ended with one. Each piece also goes to
/// `copy` (tagged with `rank`) when there is one. `done` (senders whose receivers wait for
/// the output) is dropped when the source is exhausted, which lets the owner wait for all
/// output with a deadline.
pub(crate) fn forward(
    name: String,
    source: impl Read + Send + 'static,
    sink: Sink,
    prefix: Option<String>,
    copy: Option<(u32, OutputCopy)>,
    done: impl Send + 'static,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name).spawn(move || {
        copy_lines(source, sink, prefix.as_deref().unwrap_or(""), copy.as_ref());
        drop(done);
    })
}

fn copy_lines(source: impl Read, sink: Sink, prefix: &str, copy: Option<&(u32, OutputCopy)>) {
    let mut reader = BufReader::new(source);
    let mut piece = Vec::new();
    let mut at_line_start = true;
    loop {
        piece.clear();
        match (&mut reader).take(MAX_PIECE).read_until(b'\n', &mut piece) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let head = if at_line_start { prefix } else { "" };
        if let Some((rank, copy)) = copy {
            let text = String::from_utf8_lossy(&piece);
            // A receiver that has gone away only stops the copy, never the forwarding.
            let _ = copy.send((*rank, text.trim_end_matches('\n').to_owned()));
        }
        // A piece without a newline that is shorter than the limit ends at the end of the
        // stream: the last line. It gets its newline in the same write, so that another rank's
        // line cannot land between the two.
        if piece.last() != Some(&b'\n') && (piece.len() as u64) < MAX_PIECE {
            piece.push(b'\n');
        }
        write_piece(&sink, head.as_bytes(), &piece);
        at_line_start = piece.last() == Some(&b'\n');
    }
    if !at_line_start {
        write_piece(&sink, b"", b"\n");
    }
}

/// Writes under the stream's lock. A failed write (a closed terminal, a full disk) is not a
/// reason to stop reading: the rank would block on a full pipe.
fn write_piece(sink: &Sink, head: &[u8], piece: &[u8]) {
    fn put(mut w: impl Write, head: &[u8], piece: &[u8]) {
        let _ = w
            .write_all(head)
            .and_then(|()| w.write_all(piece))
            .and_then(|()| w.flush());
    }
    match sink {
        Sink::Stdout => put(io::stdout().lock(), head, piece),
        Sink::Stderr => put(io::stderr().lock(), head, piece),
        Sink::Remote { rank, stream, to } => {
            let mut bytes = Vec::with_capacity(head.len() + piece.len());
            bytes.extend_from_slice(head);
            bytes.extend_from_slice(piece);
            let _ = to.send((*rank, *stream, bytes));
        }
    }
}
