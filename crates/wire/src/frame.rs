//! The frame: header, payload and checksum, independent of what the payload means.

use thiserror::Error;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"MPCR";
/// The wire format version this build writes. Independent of the crate version.
pub const FORMAT_VERSION: u16 = 5;
/// The oldest wire format version this build still reads (format 3 changed only HEARTBEAT and
/// STATUS_REPLY, formats 4 and 5 only PART_PUT, and each decodes the older payloads).
pub const MIN_FORMAT_VERSION: u16 = 2;
/// Bytes before the payload: magic, version, command and payload length.
pub const HEADER_LEN: usize = 12;
/// Bytes after the payload: the crc32c checksum.
pub const TRAILER_LEN: usize = 4;
/// The largest payload accepted. A control message is small; a process table of a
/// hundred thousand ranks still fits. Anything larger is refused before it is read.
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// What a frame asks for. 0 is reserved so that a zeroed buffer never parses as a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Command {
    /// A rank announces itself: rank, pid, host and data-plane address.
    Register = 1,
    /// The coordinator sends the process table (ChaRM4MPI's REFRESH_MSG).
    Refresh = 2,
    /// A rank leaves the job cleanly (ChaRM4MPI's exit_msg).
    Exit = 3,
    /// A rank asks the coordinator to end the whole job (MPI_Abort).
    Abort = 4,
    /// A tool asks for the process table.
    StatusRequest = 5,
    /// The coordinator answers with the process table.
    StatusReply = 6,
    /// Something was refused; the payload says why in a sentence.
    Error = 7,
    /// A tool (or a rank, for the application) asks for a global checkpoint.
    CheckpointRequest = 8,
    /// The coordinator answers a checkpoint request: the committed snapshot.
    CheckpointDone = 9,
    /// The coordinator asks every rank to take part in checkpoint `epoch` (ChaRM4MPI's CHKPOINT_MSG).
    Checkpoint = 10,
    /// A rank reports how many safepoints it has passed.
    SafepointCount = 11,
    /// The coordinator names the safepoint at which every rank saves its part, and where.
    CheckpointAt = 12,
    /// A rank's part of the snapshot is written and durable.
    PartDone = 13,
    /// A rank cannot take part in a checkpoint; the payload says why.
    CheckpointFailed = 14,
    /// The coordinator gives up a checkpoint; ranks waiting for it go on.
    CheckpointCancel = 15,
    /// A node daemon, or a rank's connection relayed by one, proves it belongs to the job.
    NodeHello = 16,
    /// The coordinator tells a node daemon which ranks to start and how.
    NodeLaunch = 17,
    /// A node daemon started a rank.
    RankStarted = 18,
    /// A piece of a rank's stdout or stderr, forwarded by its node daemon.
    RankOutput = 19,
    /// A rank's process ended, reported by its node daemon.
    RankEnded = 20,
    /// The coordinator asks a node daemon to signal its ranks.
    NodeSignal = 21,
    /// A node daemon is alive.
    Heartbeat = 22,
    /// The coordinator ends a node daemon (its ranks are killed).
    NodeShutdown = 23,
    /// The accepting side of a TCP control connection proves the secret and challenges.
    NodeChallenge = 24,
    /// The connecting side proves that it knows the job's secret.
    NodeProof = 25,
    /// A node daemon names the address of its store service (daemon-to-daemon copies).
    NodeReady = 26,
    /// The coordinator asks a daemon to prepare its store for a checkpoint's parts.
    StoreBegin = 27,
    /// A daemon's store is ready for a checkpoint's parts (or why not).
    StoreReady = 28,
    /// The coordinator asks a daemon to check a part in its store and copy it to partners.
    PartKeep = 29,
    /// A daemon reports which nodes hold a checked copy of a part (or why not).
    PartStored = 30,
    /// The coordinator tells a daemon which snapshots of the job its store keeps.
    StoreKeep = 31,
    /// A copy of a part follows (daemon to daemon).
    PartPut = 32,
    /// A piece of a part's bytes (daemon to daemon).
    PartData = 33,
    /// A daemon asks another for a copy of a part.
    PartGet = 34,
    /// A copied part is checked and durable on the receiving node.
    PartAck = 35,
    /// The coordinator asks a daemon to build a parity file from other nodes' parts.
    ParityBuild = 36,
    /// A parity file is durable (or why not).
    ParityStored = 37,
    /// The links of a chain a mirror's receiver does not hold yet (the sender sends only those).
    PartNeed = 38,
    /// A tool asks the coordinator to move a rank to another node.
    MigrateRequest = 48,
    /// A migration is over: the rank computes on its new node.
    MigrateDone = 49,
    /// The coordinator tells a rank to migrate.
    MigrateOut = 50,
    /// The coordinator tells a rank that a peer migrates.
    MigratePeer = 51,
    /// The migrating rank's image is written.
    MigrateCaptured = 52,
    /// The coordinator asks the source daemon to send the image.
    MigrateSend = 53,
    /// An image follows (daemon to daemon).
    MigrateImage = 54,
    /// The image is on the target and being restored.
    MigrateSent = 55,
    /// A step of a migration failed.
    MigrateFailed = 56,
    /// The restored rank computes on its new node.
    MigrateArrived = 57,
}

impl Command {
    /// The command for a code read off the wire, or `None` for an unknown one.
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::Register,
            2 => Self::Refresh,
            3 => Self::Exit,
            4 => Self::Abort,
            5 => Self::StatusRequest,
            6 => Self::StatusReply,
            7 => Self::Error,
            8 => Self::CheckpointRequest,
            9 => Self::CheckpointDone,
            10 => Self::Checkpoint,
            11 => Self::SafepointCount,
            12 => Self::CheckpointAt,
            13 => Self::PartDone,
            14 => Self::CheckpointFailed,
            15 => Self::CheckpointCancel,
            16 => Self::NodeHello,
            17 => Self::NodeLaunch,
            18 => Self::RankStarted,
            19 => Self::RankOutput,
            20 => Self::RankEnded,
            21 => Self::NodeSignal,
            22 => Self::Heartbeat,
            23 => Self::NodeShutdown,
            24 => Self::NodeChallenge,
            25 => Self::NodeProof,
            26 => Self::NodeReady,
            27 => Self::StoreBegin,
            28 => Self::StoreReady,
            29 => Self::PartKeep,
            30 => Self::PartStored,
            31 => Self::StoreKeep,
            32 => Self::PartPut,
            33 => Self::PartData,
            34 => Self::PartGet,
            35 => Self::PartAck,
            36 => Self::ParityBuild,
            37 => Self::ParityStored,
            38 => Self::PartNeed,
            48 => Self::MigrateRequest,
            49 => Self::MigrateDone,
            50 => Self::MigrateOut,
            51 => Self::MigratePeer,
            52 => Self::MigrateCaptured,
            53 => Self::MigrateSend,
            54 => Self::MigrateImage,
            55 => Self::MigrateSent,
            56 => Self::MigrateFailed,
            57 => Self::MigrateArrived,
            _ => return None,
        })
    }
}

/// Why bytes did not form a frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the peer does not speak the mpicr control protocol (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error(
        "the peer speaks control protocol version {0}, this build reads versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"
    )]
    UnsupportedVersion(u16),
    #[error("unknown control command {0}")]
    UnknownCommand(u16),
    #[error("a control frame of {0} bytes exceeds the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(u32),
    #[error("control frame checksum mismatch (computed {computed:08x}, frame says {stored:08x})")]
    Checksum { computed: u32, stored: u32 },
    #[error("the {command:?} payload is malformed: {reason}")]
    Payload { command: Command, reason: String },
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub command: Command,
    pub payload_len: u32,
}

impl Header {
    /// Parses and validates the first [`HEADER_LEN`] bytes of a frame.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, FrameError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let code = u16::from_le_bytes([bytes[6], bytes[7]]);
        let command = Command::from_code(code).ok_or(FrameError::UnknownCommand(code))?;
        let payload_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if payload_len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload_len));
        }
        Ok(Self {
            version,
            command,
            payload_len,
        })
    }

    /// Total frame length: header, payload and checksum.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize + TRAILER_LEN
    }
}

/// Builds a complete frame around `payload`.
pub fn encode_frame(command: Command, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&frame_header(command, payload.len()));
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The header of a frame of `command` whose payload has `len` bytes; the frame's checksum is
/// the crc32c of this header followed by the payload.
pub fn frame_header(command: Command, len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).expect("control payloads are far below 4 GiB");
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    head[6..8].copy_from_slice(&(command as u16).to_le_bytes());
    head[8..].copy_from_slice(&len.to_le_bytes());
    head
}

/// A frame parsed out of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    pub payload: &'a [u8],
    /// Bytes the whole frame took in the buffer.
    pub len: usize,
}

/// Parses one frame from the start of `buf`; `Ok(None)` when `buf` holds only part of one.
pub fn decode_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(head)?;
    let total = header.frame_len();
    if buf.len() < total {
        return Ok(None);
    }
    let body_end = total - TRAILER_LEN;
    let stored = u32::from_le_bytes(buf[body_end..total].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&buf[..body_end]);
    if stored != computed {
        return Err(FrameError::Checksum { computed, stored });
    }
    Ok(Some(Frame {
        header,
        payload: &buf[HEADER_LEN..body_end],
        len: total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = encode_frame(Command::Exit, b"abc");
        let frame = decode_frame(&f).unwrap().unwrap();
        assert_eq!(frame.header.command, Command::Exit);
        assert_eq!(frame.payload, b"abc");
        assert_eq!(frame.len, f.len());
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let f = encode_frame(Command::Exit, b"abcdef");
        for cut in 0..f.len() {
            assert_eq!(decode_frame(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn every_corrupted_byte_is_refused() {
        let f = encode_frame(Command::Register, b"payload");
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(
                decode_frame(&g).is_err() || decode_frame(&g).unwrap().is_none(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn zero_command_and_unknown_version_are_refused() {
        let mut f = encode_frame(Command::Exit, b"");
        f[6] = 0;
        f[7] = 0;
        assert_eq!(decode_frame(&f), Err(FrameError::UnknownCommand(0)));
        let mut g = encode_frame(Command::Exit, b"");
        g[4] = 99;
        assert_eq!(decode_frame(&g), Err(FrameError::UnsupportedVersion(99)));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut f = encode_frame(Command::Exit, b"");
        f[8..12].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        assert_eq!(
            decode_frame(&f[..HEADER_LEN]),
            Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
        );
    }
}
