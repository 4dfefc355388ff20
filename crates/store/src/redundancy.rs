//! What a manifest says about the copies of its parts beyond the one each rank wrote: mirrors
//! on other nodes (`--mirror K`: a part's `nodes`) or XOR parity (`--parity G`: the
//! `parity.*` entries of `extra`). `docs/snapshot-format.md` ("Manifest format 2") specifies
//! the fields; this module reads them, for the coordinator (which writes the parity entries and
//! rebuilds parts from them) and for whoever shows a snapshot's redundancy.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::manifest::Manifest;

/// The prefix of a parity entry's key in a manifest's `extra`.
const PARITY_PREFIX: &str = "parity.";

/// A parity entry of a manifest's `extra` (`parity.<name>` = `HOLDER SIZE CRC32C R1,R2,…`):
/// the file `<name>` on node `holder` is the XOR of the parts of `ranks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityEntry {
    pub name: String,
    pub holder: String,
    pub size: u64,
    pub crc32c: u32,
    pub ranks: Vec<u32>,
}

impl ParityEntry {
    /// The entry's key and value in `extra`.
    pub fn encode(&self) -> (String, String) {
        let ranks: Vec<String> = self.ranks.iter().map(u32::to_string).collect();
        (
            format!("{PARITY_PREFIX}{}", self.name),
            format!(
                "{} {} {} {}",
                self.holder,
                self.size,
                self.crc32c,
                ranks.join(",")
            ),
        )
    }

    /// The entry of an `extra` key and value; `None` for another key or a malformed value.
    pub fn decode(key: &str, value: &str) -> Option<Self> {
        let name = key.strip_prefix(PARITY_PREFIX)?.to_owned();
        let mut fields = value.split(' ');
        let holder = fields.next()?.to_owned();
        let size = fields.next()?.parse().ok()?;
        let crc32c = fields.next()?.parse().ok()?;
        let ranks = fields
            .next()?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Self {
            name,
            holder,
            size,
            crc32c,
            ranks,
        })
    }
}

/// How a committed snapshot survives the loss of a node, as its manifest recorded it when it
/// was committed (a node lost since is not known here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Redundancy {
    /// One copy of each part: in the snapshot's directory, or in its rank's node store.
    None,
    /// `--mirror K`: each part on its rank's node and K others. `complete`: every part is on
    /// 1+K distinct nodes (a job with fewer nodes than that commits with fewer copies).
    Mirror { copies: u32, complete: bool },
    /// `--parity G`: groups of G nodes, the XOR of each group's parts on a node of another
    /// group. `complete`: every part is in a parity file held on a node other than its own.
    Parity { group: u32, complete: bool },
}

impl Redundancy {
    /// Reads the redundancy of `manifest` (format 2's `nodes`, `mirror`, `parity` and parity
    /// entries; a format-1 manifest has none).
    pub fn of(manifest: &Manifest) -> Self {
        let group = manifest.extra_u64("parity").unwrap_or(0);
        if group > 0 {
            let entries: Vec<ParityEntry> = manifest
                .extra
                .iter()
                .filter_map(|(k, v)| ParityEntry::decode(k, v))
                .collect();
            let complete = manifest.parts.iter().all(|p| {
                let own = p.nodes.first().map(String::as_str).or_else(|| {
                    manifest
                        .placement
                        .iter()
                        .find(|(r, _)| *r == p.rank)
                        .map(|(_, n)| n.as_str())
                });
                entries
                    .iter()
                    .any(|e| e.ranks.contains(&p.rank) && Some(e.holder.as_str()) != own)
            });
            return Self::Parity {
                group: u32::try_from(group).unwrap_or(u32::MAX),
                complete,
            };
        }
        let copies = manifest.extra_u64("mirror").unwrap_or(0);
        if copies == 0 {
            return Self::None;
        }
        let complete = manifest.parts.iter().all(|p| {
            let distinct: BTreeSet<&str> = p.nodes.iter().map(String::as_str).collect();
            distinct.len() as u64 > copies
        });
        Self::Mirror {
            copies: u32::try_from(copies).unwrap_or(u32::MAX),
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::{PartInfo, part_file_name};

    /// A manifest of `nodes.len()` ranks, rank r on `nodes[r][0]` with its part on `nodes[r]`.
    fn manifest(nodes: &[&[&str]], extra: &[(&str, &str)]) -> Manifest {
        let parts = nodes
            .iter()
            .enumerate()
            .map(|(r, on)| PartInfo {
                rank: r as u32,
                checkpointer: "image".into(),
                file: part_file_name(r as u32),
                size: 10,
                crc32c: 0,
                sections: Vec::new(),
                nodes: on.iter().map(|n| (*n).to_owned()).collect(),
            })
            .collect();
        Manifest {
            format_version: 2,
            job: "j".into(),
            epoch: 1,
            created: 0,
            command: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            placement: nodes
                .iter()
                .enumerate()
                .map(|(r, on)| (r as u32, on.first().copied().unwrap_or("n0").to_owned()))
                .collect(),
            parts,
            in_transit_messages: 0,
            safepoint: 0,
            transport: "tcp".into(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn parity_entries_round_trip() {
        let entry = ParityEntry {
            name: "parity-0-1".into(),
            holder: "n3".into(),
            size: 4096,
            crc32c: 77,
            ranks: vec![1, 4],
        };
        let (key, value) = entry.encode();
        assert_eq!(key, "parity.parity-0-1");
        assert_eq!(value, "n3 4096 77 1,4");
        assert_eq!(ParityEntry::decode(&key, &value), Some(entry));
        assert_eq!(ParityEntry::decode("mirror", "1"), None);
        assert_eq!(ParityEntry::decode("parity.x", "n3 big 77 1"), None);
    }

    #[test]
    fn redundancy_as_recorded() {
        let plain = manifest(&[&[], &[]], &[("crs", "self")]);
        assert_eq!(Redundancy::of(&plain), Redundancy::None);
        let stored = manifest(&[&["a"], &["b"]], &[("storage", "/s"), ("mirror", "0")]);
        assert_eq!(Redundancy::of(&stored), Redundancy::None);
        let mirrored = manifest(&[&["a", "b"], &["b", "a"]], &[("mirror", "1")]);
        assert_eq!(
            Redundancy::of(&mirrored),
            Redundancy::Mirror {
                copies: 1,
                complete: true
            }
        );
        // Two copies asked for, but rank 1's part is on two nodes only.
        let short = manifest(&[&["a", "b", "c"], &["b", "c"]], &[("mirror", "2")]);
        assert_eq!(
            Redundancy::of(&short),
            Redundancy::Mirror {
                copies: 2,
                complete: false
            }
        );
        let parity = [
            ("parity", "1"),
            ("parity.parity-0-0", "b 10 0 0"),
            ("parity.parity-1-0", "a 10 0 1"),
        ];
        assert_eq!(
            Redundancy::of(&manifest(&[&["a"], &["b"]], &parity)),
            Redundancy::Parity {
                group: 1,
                complete: true
            }
        );
        // Rank 1's parity is on its own node: its loss loses both.
        let own = [
            ("parity", "1"),
            ("parity.parity-0-0", "b 10 0 0"),
            ("parity.parity-1-0", "b 10 0 1"),
        ];
        assert_eq!(
            Redundancy::of(&manifest(&[&["a"], &["b"]], &own)),
            Redundancy::Parity {
                group: 1,
                complete: false
            }
        );
        let json = serde_json::to_value(Redundancy::Mirror {
            copies: 1,
            complete: true,
        })
        .expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"kind": "mirror", "copies": 1, "complete": true})
        );
    }
}
