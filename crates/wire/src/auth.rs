//! Proving the job's secret on a TCP control connection without sending it: a mutual
//! challenge–response with HMAC-SHA256.
//!
//! ```text
//! connecting side C                                   accepting side A
//!   NODE_HELLO { job, node, role, nonce_c }      →
//!                                                ←    NODE_CHALLENGE { nonce_a, proof_a }
//!   checks proof_a (A knows the secret)
//!   NODE_PROOF { proof_c }                       →
//!                                                     checks proof_c (C knows the secret)
//! proof_x = HMAC-SHA256(secret, label_x | len-prefixed job, node | role | nonce_c | nonce_a)
//! ```
//!
//! `label_x` is `mpicr-accept` or `mpicr-connect`, so that one side's proof can never be
//! replayed as the other's; both nonces are fresh (32 bytes from the system's random source),
//! so a recorded exchange proves nothing on a new connection. Proofs are compared in constant
//! time (`Mac::verify_slice`). The secret only keys the HMAC. The frames are not encrypted:
//! this proves who is at the other end, it does not hide what they say afterwards.

use std::io::{self, Read, Write};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::frame::Command;
use crate::message::{HelloRole, Message, NodeChallenge, NodeHello, NodeProof};
use crate::stream::{ReadError, read_message, write_message};

type HmacSha256 = Hmac<Sha256>;

/// Which side a proof comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that accepted the connection (the coordinator's port, a store service).
    Accepting,
    /// The side that connected.
    Connecting,
}

/// Why the authentication of a connection failed.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("cannot read random bytes for a nonce")]
    Random(#[source] io::Error),
    #[error("the connection failed during the authentication")]
    Io(#[source] io::Error),
    #[error("the connection failed during the authentication")]
    Read(#[source] ReadError),
    #[error("the peer refused the connection: {0}")]
    Refused(String),
    #[error("the peer sent {0:?} during the authentication")]
    Unexpected(Command),
    #[error("the peer did not prove that it knows the job's secret")]
    BadProof,
    #[error("the nonce `{0}` is not 64 hexadecimal digits")]
    BadNonce(String),
}

/// A fresh nonce: 32 random bytes as 64 hexadecimal digits.
pub fn new_nonce() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(io::Error::other(e.to_string())))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn well_formed(nonce: &str) -> Result<(), AuthError> {
    if nonce.len() == 64 && unhex(nonce).is_some() {
        Ok(())
    } else {
        Err(AuthError::BadNonce(nonce.chars().take(80).collect()))
    }
}

fn mac(secret: &str, side: Side, hello: &NodeHello, accept_nonce: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(match side {
        Side::Accepting => b"mpicr-accept\0",
        Side::Connecting => b"mpicr-connect",
    });
    for field in [hello.job.as_bytes(), hello.node.as_bytes()] {
        mac.update(&(field.len() as u64).to_le_bytes());
        mac.update(field);
    }
    mac.update(&[match hello.role {
        HelloRole::Daemon => 0,
        HelloRole::Relay => 1,
        HelloRole::Store => 2,
    }]);
    mac.update(hello.nonce.as_bytes());
    mac.update(accept_nonce.as_bytes());
    mac
}

/// The proof `side` gives for the exchange of `hello` and the accepting side's nonce.
pub fn proof(secret: &str, side: Side, hello: &NodeHello, accept_nonce: &str) -> String {
    hex(&mac(secret, side, hello, accept_nonce)
        .finalize()
        .into_bytes())
}

/// Whether `proof` is the one `side` must give (compared in constant time).
pub fn verify(
    secret: &str,
    side: Side,
    hello: &NodeHello,
    accept_nonce: &str,
    proof: &str,
) -> bool {
    let Some(bytes) = unhex(proof) else {
        return false;
    };
    mac(secret, side, hello, accept_nonce)
        .verify_slice(&bytes)
        .is_ok()
}

/// The connecting side: sends NODE_HELLO, checks the accepting side's proof, sends its own.
/// Afterwards the connection belongs to `role`.
pub fn connect<S>(
    stream: &S,
    secret: &str,
    job: &str,
    node: &str,
    role: HelloRole,
) -> Result<(), AuthError>
where
    for<'a> &'a S: Read + Write,
{
    let hello = NodeHello {
        job: job.to_owned(),
        node: node.to_owned(),
        role,
        nonce: new_nonce()?,
    };
    write_message(&mut &*stream, &Message::NodeHello(hello.clone())).map_err(AuthError::Io)?;
    let challenge = match read_message(&mut &*stream) {
        Ok(Message::NodeChallenge(c)) => c,
        Ok(Message::Error(why)) => return Err(AuthError::Refused(why)),
        Ok(other) => return Err(AuthError::Unexpected(other.command())),
        Err(e) => return Err(AuthError::Read(e)),
    };
    well_formed(&challenge.nonce)?;
    if !verify(
        secret,
        Side::Accepting,
        &hello,
        &challenge.nonce,
        &challenge.proof,
    ) {
        return Err(AuthError::BadProof);
    }
    let mine = proof(secret, Side::Connecting, &hello, &challenge.nonce);
    write_message(
        &mut &*stream,
        &Message::NodeProof(NodeProof { proof: mine }),
    )
    .map_err(AuthError::Io)
}

/// The accepting side, once it has read `hello` (and checked its job and node): answers with
/// its challenge and proof, and checks the connecting side's proof. On an error the caller
/// logs it and answers ERROR.
pub fn accept<S>(stream: &S, secret: &str, hello: &NodeHello) -> Result<(), AuthError>
where
    for<'a> &'a S: Read + Write,
{
    well_formed(&hello.nonce)?;
    let nonce = new_nonce()?;
    let challenge = NodeChallenge {
        proof: proof(secret, Side::Accepting, hello, &nonce),
        nonce: nonce.clone(),
    };
    write_message(&mut &*stream, &Message::NodeChallenge(challenge)).map_err(AuthError::Io)?;
    match read_message(&mut &*stream) {
        Ok(Message::NodeProof(p)) if verify(secret, Side::Connecting, hello, &nonce, &p.proof) => {
            Ok(())
        }
        Ok(Message::NodeProof(_)) => Err(AuthError::BadProof),
        Ok(Message::Error(why)) => Err(AuthError::Refused(why)),
        Ok(other) => Err(AuthError::Unexpected(other.command())),
        Err(e) => Err(AuthError::Read(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn hello() -> NodeHello {
        NodeHello {
            job: "j".into(),
            node: "n1".into(),
            role: HelloRole::Daemon,
            nonce: "11".repeat(32),
        }
    }

    #[test]
    fn proofs_depend_on_the_secret_the_side_and_every_field() {
        let h = hello();
        let p = proof("s", Side::Connecting, &h, &"22".repeat(32));
        assert!(verify("s", Side::Connecting, &h, &"22".repeat(32), &p));
        assert!(!verify("t", Side::Connecting, &h, &"22".repeat(32), &p));
        assert!(!verify("s", Side::Accepting, &h, &"22".repeat(32), &p));
        assert!(!verify("s", Side::Connecting, &h, &"33".repeat(32), &p));
        let mut other = h.clone();
        other.role = HelloRole::Relay;
        assert!(!verify("s", Side::Connecting, &other, &"22".repeat(32), &p));
        assert!(!verify("s", Side::Connecting, &h, &"22".repeat(32), "zz"));
    }

    fn exchange(
        client_secret: &str,
        server_secret: &str,
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (a, c) = UnixStream::pair().unwrap();
        let server = std::thread::spawn({
            let server_secret = server_secret.to_owned();
            move || {
                let Ok(Message::NodeHello(h)) = read_message(&mut &a) else {
                    panic!("no hello");
                };
                let result = accept(&a, &server_secret, &h);
                if result.is_err() {
                    let _ = write_message(&mut &a, &Message::Error("refused".into()));
                }
                result
            }
        });
        let client = connect(&c, client_secret, "j", "n1", HelloRole::Relay);
        drop(c);
        (client, server.join().unwrap())
    }

    #[test]
    fn the_same_secret_passes_both_ways_and_a_wrong_one_fails_on_both_sides() {
        let (client, server) = exchange("secret", "secret");
        assert!(client.is_ok() && server.is_ok(), "{client:?} {server:?}");
        // The client finds out that the server is not the job's: it never sends its proof.
        let (client, server) = exchange("secret", "other");
        assert!(matches!(client, Err(AuthError::BadProof)), "{client:?}");
        assert!(server.is_err());
    }

    #[test]
    fn a_wrong_proof_is_refused() {
        let (a, c) = UnixStream::pair().unwrap();
        let h = hello();
        let server = std::thread::spawn(move || accept(&a, "secret", &h));
        let Ok(Message::NodeChallenge(_)) = read_message(&mut &c) else {
            panic!("no challenge");
        };
        write_message(
            &mut &c,
            &Message::NodeProof(NodeProof {
                proof: "00".repeat(32),
            }),
        )
        .unwrap();
        assert!(matches!(server.join().unwrap(), Err(AuthError::BadProof)));
    }
}
