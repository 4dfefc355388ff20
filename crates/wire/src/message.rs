//! The messages carried in frames and their payload encoding.

use serde::{Deserialize, Serialize};

use crate::frame::{Command, FrameError, encode_frame};

/// A rank's self-introduction, sent once at MPI initialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub rank: u32,
    pub pid: u32,
    pub host: String,
    /// Where peers reach this rank's data plane, e.g. `tcp:127.0.0.1:40123` or `shm:/dev/shm/…`.
    pub data_addr: String,
}

/// Where a rank is in its life, as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcState {
    /// Started by its node daemon, not registered yet (or not an MPI program).
    Spawned,
    /// Registered with the coordinator and running.
    Running,
    /// Left MPI cleanly and is about to exit.
    Finalized,
    /// Exited with this status code.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ProcState {
    /// A word for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spawned => "spawned",
            Self::Running => "running",
            Self::Finalized => "finalized",
            Self::Exited(_) => "exited",
            Self::Signaled(_) => "signaled",
        }
    }
}

/// One row of the process table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcEntry {
    pub rank: u32,
    pub node: String,
    pub pid: u32,
    pub state: ProcState,
    pub data_addr: String,
}

/// The process table the coordinator sends to every rank (ChaRM4MPI's REFRESH_MSG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub table: Vec<ProcEntry>,
}

/// A rank's clean exit notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub rank: u32,
}

/// A rank's request to end the whole job with `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub rank: u32,
    pub code: i32,
    pub reason: String,
}

/// The coordinator's answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    pub job: String,
    pub launcher_pid: u32,
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when the job started.
    pub started_at: u64,
    pub ranks: Vec<ProcEntry>,
}

/// Every control message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Register(Register),
    Refresh(Refresh),
    Exit(Exit),
    Abort(Abort),
    StatusRequest,
    StatusReply(StatusReply),
    Error(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ crate::frame::MAX_PAYLOAD as usize }>()
}

fn to_payload<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).expect("control messages always serialize")
}

fn from_payload<T: for<'de> Deserialize<'de>>(
    command: Command,
    payload: &[u8],
) -> Result<T, FrameError> {
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config()).map_err(|e| FrameError::Payload {
            command,
            reason: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(FrameError::Payload {
            command,
            reason: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

impl Message {
    /// The frame command that carries this message.
    pub fn command(&self) -> Command {
        match self {
            Self::Register(_) => Command::Register,
            Self::Refresh(_) => Command::Refresh,
            Self::Exit(_) => Command::Exit,
            Self::Abort(_) => Command::Abort,
            Self::StatusRequest => Command::StatusRequest,
            Self::StatusReply(_) => Command::StatusReply,
            Self::Error(_) => Command::Error,
        }
    }

    /// The complete frame for this message.
    pub fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Self::Register(m) => to_payload(m),
            Self::Refresh(m) => to_payload(m),
            Self::Exit(m) => to_payload(m),
            Self::Abort(m) => to_payload(m),
            Self::StatusRequest => Vec::new(),
            Self::StatusReply(m) => to_payload(m),
            Self::Error(m) => to_payload(m),
        };
        encode_frame(self.command(), &payload)
    }

    /// Decodes the payload of a frame whose header said `command`.
    pub fn decode(command: Command, payload: &[u8]) -> Result<Self, FrameError> {
        Ok(match command {
            Command::Register => Self::Register(from_payload(command, payload)?),
            Command::Refresh => Self::Refresh(from_payload(command, payload)?),
            Command::Exit => Self::Exit(from_payload(command, payload)?),
            Command::Abort => Self::Abort(from_payload(command, payload)?),
            Command::StatusRequest => {
                if !payload.is_empty() {
                    return Err(FrameError::Payload {
                        command,
                        reason: "a status request carries no payload".into(),
                    });
                }
                Self::StatusRequest
            }
            Command::StatusReply => Self::StatusReply(from_payload(command, payload)?),
            Command::Error => Self::Error(from_payload(command, payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_frame;

    fn round_trip(m: Message) {
        let bytes = m.encode();
        let frame = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(
            Message::decode(frame.header.command, frame.payload).unwrap(),
            m
        );
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Register(Register {
            rank: 3,
            pid: 77,
            host: "n1".into(),
            data_addr: "tcp:127.0.0.1:9".into(),
        }));
        round_trip(Message::Refresh(Refresh {
            table: vec![ProcEntry {
                rank: 0,
                node: "n".into(),
                pid: 1,
                state: ProcState::Signaled(9),
                data_addr: String::new(),
            }],
        }));
        round_trip(Message::Exit(Exit { rank: 1 }));
        round_trip(Message::Abort(Abort {
            rank: 1,
            code: 3,
            reason: "x".into(),
        }));
        round_trip(Message::StatusRequest);
        round_trip(Message::Error("no".into()));
    }

    #[test]
    fn garbage_payloads_are_errors_not_panics() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..200 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for code in 1..=7 {
                let command = Command::from_code(code).unwrap();
                let _ = Message::decode(command, &payload);
            }
        }
    }
}
