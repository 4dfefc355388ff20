//! The section that holds a rank's undelivered and in-transit messages.
//!
//! Layout, little-endian: count u64, then per message ctx u32, source u32, tag i32,
//! length u64 and the bytes. Lengths are checked against what is left before anything is
//! allocated.

use engine::SavedMessage;

use crate::CrsError;

pub fn encode_messages(messages: &[SavedMessage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + messages.iter().map(|m| 20 + m.data.len()).sum::<usize>());
    out.extend_from_slice(&(messages.len() as u64).to_le_bytes());
    for m in messages {
        out.extend_from_slice(&m.ctx.to_le_bytes());
        out.extend_from_slice(&m.source.to_le_bytes());
        out.extend_from_slice(&m.tag.to_le_bytes());
        out.extend_from_slice(&(m.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&m.data);
    }
    out
}

pub fn decode_messages(section: &str, bytes: &[u8]) -> Result<Vec<SavedMessage>, CrsError> {
    let bad = |reason: &str| CrsError::Malformed {
        section: section.into(),
        reason: reason.into(),
    };
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], CrsError> {
        if rest.len() < n {
            return Err(bad("it ends in the middle of a message"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let count = u64_of(take(8)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let ctx = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let source = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let tag = i32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let len = usize::try_from(u64_of(take(8)?))
            .map_err(|_| bad("a length does not fit in memory"))?;
        let data = take(len)?.to_vec();
        out.push(SavedMessage {
            ctx,
            source,
            tag,
            data,
        });
    }
    if !rest.is_empty() {
        return Err(bad("bytes follow the last message"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let msgs = vec![
            SavedMessage {
                ctx: 0,
                source: 1,
                tag: 5,
                data: vec![1, 2, 3],
            },
            SavedMessage {
                ctx: 3,
                source: 0,
                tag: -2,
                data: vec![],
            },
        ];
        let bytes = encode_messages(&msgs);
        assert_eq!(decode_messages("m", &bytes).unwrap(), msgs);
        for cut in 0..bytes.len() {
            assert!(decode_messages("m", &bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = bytes.clone();
        huge[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_messages("m", &huge).is_err());
    }
}
