//! The journal's on-disk format, as pure functions over bytes.
//!
//! A file is an 8-byte magic followed by frames. A frame is `len: u32 LE`, `crc: u32 LE`
//! (CRC-32C over the length bytes and the payload) and `len` payload bytes. A payload is a tag
//! byte and fields; a journal record is a [`Record`]: what became of one authorization
//! ([`Mark`]: held before it was sent, spent, healed, released). Tag 1 (spent) is what the
//! first format wrote for every authorization handed out, so an old journal reads as all
//! spent. Tag 6 is a spend whose receipt stated the amount charged (an `upto` payment): the
//! same fields plus the amount, 16 bytes little-endian. A buyer older than tag 6 refuses such
//! a file as corrupt rather than guess (a downgrade fails closed). A snapshot uses the same frames and ends with an `End` frame carrying the record
//! count, so a snapshot missing its end is detected.
//!
//! Recovery of the append-only journal distinguishes a **torn tail** (the last frame was cut or
//! zero-filled by a crash during an unsynced append; it is dropped) from **corruption** (a bad
//! frame followed by more data, a wrong magic: refused with the offset). Snapshots are only
//! ever published by an atomic rename after a sync, so for them any defect is corruption.

use crc::{CRC_32_ISCSI, Crc};

/// Magic of the append-only journal file.
pub const JOURNAL_MAGIC: &[u8; 8] = b"OBOLBJ1\n";
/// Magic of a snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"OBOLBS1\n";
/// Frame header: length and checksum.
pub const FRAME_HEADER: usize = 8;
/// Largest payload accepted (a record holds two short strings).
pub const MAX_PAYLOAD: usize = 4096;

const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
const TAG_SPENT: u8 = 1;
const TAG_END: u8 = 2;
const TAG_HELD: u8 = 3;
const TAG_RELEASED: u8 = 4;
const TAG_HEALED: u8 = 5;
const TAG_SPENT_CHARGED: u8 = 6;

/// What became of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mark {
    /// About to be sent (recorded durably before sending); its fate is not known yet.
    Held,
    /// Spent: the seller confirmed it, or it was held and the chain says it was used.
    Spent,
    /// Found already used (by a seller's answer, the chain, or a handover) without this journal
    /// having held it: lost state, healed. Counts as spent.
    Healed,
    /// Refused by the seller without settlement: it may be spent again.
    Released,
}

impl Mark {
    fn tag(self) -> u8 {
        match self {
            Self::Held => TAG_HELD,
            Self::Spent => TAG_SPENT,
            Self::Healed => TAG_HEALED,
            Self::Released => TAG_RELEASED,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            TAG_HELD => Some(Self::Held),
            TAG_SPENT => Some(Self::Spent),
            TAG_HEALED => Some(Self::Healed),
            TAG_RELEASED => Some(Self::Released),
            _ => None,
        }
    }

    /// Whether it is spent (terminal).
    pub fn is_spent(self) -> bool {
        matches!(self, Self::Spent | Self::Healed)
    }
}

/// What became of the authorization with consume key `key` of upstream `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Record {
    /// The upstream whose pool held the authorization.
    pub upstream: String,
    /// The consume key (obol-reference §6: id, nonce, ... signature).
    pub key: String,
    /// What happened.
    pub mark: Mark,
    /// For a spend whose receipt stated it: the amount charged, in the asset's atomic units
    /// (an `upto` payment charges at most what was authorized). Kept only on [`Mark::Spent`].
    pub charged: Option<u128>,
}

impl Record {
    /// A spent record for `upstream` / `key` (what the first format recorded for every
    /// authorization handed out).
    pub fn new(upstream: impl Into<String>, key: impl Into<String>) -> Self {
        Self::marked(upstream, key, Mark::Spent)
    }

    /// A record with `mark`.
    pub fn marked(upstream: impl Into<String>, key: impl Into<String>, mark: Mark) -> Self {
        Self {
            upstream: upstream.into(),
            key: key.into(),
            mark,
            charged: None,
        }
    }

    /// The record of a spend whose receipt stated `charged` (atomic units).
    pub fn spent_charged(
        upstream: impl Into<String>,
        key: impl Into<String>,
        charged: u128,
    ) -> Self {
        Self {
            charged: Some(charged),
            ..Self::marked(upstream, key, Mark::Spent)
        }
    }

    fn tag(&self) -> u8 {
        match (self.mark, self.charged) {
            (Mark::Spent, Some(_)) => TAG_SPENT_CHARGED,
            (mark, _) => mark.tag(),
        }
    }
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defect {
    /// Byte offset of the first byte that could not be used.
    pub offset: u64,
    /// A constant description.
    pub reason: &'static str,
}

/// A decoded journal: its records, and the length of the valid prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedJournal {
    /// Records in file order.
    pub records: Vec<Record>,
    /// Bytes that decoded cleanly (magic plus whole frames).
    pub valid_len: u64,
    /// A torn tail that was dropped, if any.
    pub torn: Option<Defect>,
}

/// Appends one frame for `record` to `out`. Fails only when the record is too large.
pub fn encode_record(out: &mut Vec<u8>, record: &Record) -> Result<(), TooLarge> {
    let up = record.upstream.as_bytes();
    let key = record.key.as_bytes();
    let tag = record.tag();
    let amount_len = if tag == TAG_SPENT_CHARGED { 16 } else { 0 };
    let len = 1 + 2 + up.len() + 2 + key.len() + amount_len;
    if len > MAX_PAYLOAD {
        return Err(TooLarge);
    }
    let mut payload = Vec::with_capacity(len);
    payload.push(tag);
    for field in [up, key] {
        payload.extend_from_slice(
            &u16::try_from(field.len())
                .map_err(|_| TooLarge)?
                .to_le_bytes(),
        );
        payload.extend_from_slice(field);
    }
    if let (TAG_SPENT_CHARGED, Some(amount)) = (tag, record.charged) {
        payload.extend_from_slice(&amount.to_le_bytes());
    }
    push_frame(out, &payload);
    Ok(())
}

/// A record larger than [`MAX_PAYLOAD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("journal record larger than {MAX_PAYLOAD} bytes")]
pub struct TooLarge;

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut digest = CRC32C.digest();
    digest.update(&len);
    digest.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&digest.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// A whole snapshot file for `records`.
pub fn encode_snapshot<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<Vec<u8>, TooLarge> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    let mut count: u64 = 0;
    for r in records {
        encode_record(&mut out, r)?;
        count += 1;
    }
    let mut end = vec![TAG_END];
    end.extend_from_slice(&count.to_le_bytes());
    push_frame(&mut out, &end);
    Ok(out)
}

enum Frame {
    Record(Record),
    End(u64),
}

/// Outcome of reading one frame at an offset.
enum Step {
    Frame(Frame, usize),
    /// Not enough bytes for the frame: a cut tail.
    Short,
    /// Bytes present but wrong (bad checksum, length or payload).
    Bad(&'static str),
}

fn read_frame(buf: &[u8]) -> Step {
    if buf.len() < FRAME_HEADER {
        return Step::Short;
    }
    let len_bytes: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Step::Bad("invalid frame length");
    }
    let Some(payload) = buf.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Step::Short;
    };
    let mut digest = CRC32C.digest();
    digest.update(&len_bytes);
    digest.update(payload);
    if digest.finalize() != crc {
        return Step::Bad("checksum mismatch");
    }
    match decode_payload(payload) {
        Some(frame) => Step::Frame(frame, FRAME_HEADER + len),
        None => Step::Bad("malformed record"),
    }
}

fn decode_payload(p: &[u8]) -> Option<Frame> {
    let (&tag, rest) = p.split_first()?;
    if tag == TAG_END {
        return Some(Frame::End(u64::from_le_bytes(rest.try_into().ok()?)));
    }
    let (mark, with_amount) = match tag {
        TAG_SPENT_CHARGED => (Mark::Spent, true),
        t => (Mark::from_tag(t)?, false),
    };
    let (upstream, rest) = take_str(rest)?;
    let (key, rest) = take_str(rest)?;
    let charged = if with_amount {
        Some(u128::from_le_bytes(rest.try_into().ok()?))
    } else if rest.is_empty() {
        None
    } else {
        return None;
    };
    Some(Frame::Record(Record {
        upstream,
        key,
        mark,
        charged,
    }))
}

fn take_str(p: &[u8]) -> Option<(String, &[u8])> {
    let len = u16::from_le_bytes([*p.first()?, *p.get(1)?]) as usize;
    let s = p.get(2..2 + len)?;
    Some((String::from_utf8(s.to_vec()).ok()?, &p[2 + len..]))
}

fn defect(offset: usize, reason: &'static str) -> Defect {
    Defect {
        offset: offset as u64,
        reason,
    }
}

/// Decodes an append-only journal, dropping a torn tail and refusing any other damage.
pub fn decode_journal(buf: &[u8]) -> Result<DecodedJournal, Defect> {
    let mut out = DecodedJournal::default();
    if buf.len() < JOURNAL_MAGIC.len() {
        // A crash while the file was being created: no record was ever acknowledged from it.
        if JOURNAL_MAGIC.starts_with(buf) || buf.iter().all(|&b| b == 0) {
            out.torn = (!buf.is_empty()).then(|| defect(0, "incomplete file header"));
            return Ok(out);
        }
        return Err(defect(0, "not a buyer journal (bad magic)"));
    }
    if &buf[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        if buf.iter().all(|&b| b == 0) {
            out.torn = Some(defect(0, "zero-filled file header"));
            return Ok(out);
        }
        return Err(defect(0, "not a buyer journal (bad magic)"));
    }
    let mut at = JOURNAL_MAGIC.len();
    while at < buf.len() {
        let rest = &buf[at..];
        match read_frame(rest) {
            Step::Frame(Frame::Record(r), used) => {
                out.records.push(r);
                at += used;
            }
            Step::Frame(Frame::End(_), _) => return Err(defect(at, "end frame in a journal")),
            Step::Short => {
                out.torn = Some(defect(at, "incomplete last frame"));
                break;
            }
            Step::Bad(reason) => {
                // Only the last frame may be damaged by a crash; a zero-filled tail is the
                // other shape an interrupted append leaves behind.
                if rest.iter().all(|&b| b == 0) || is_last_frame(rest) {
                    out.torn = Some(defect(at, reason));
                    break;
                }
                return Err(defect(at, reason));
            }
        }
    }
    out.valid_len = at as u64;
    Ok(out)
}

fn is_last_frame(rest: &[u8]) -> bool {
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (1..=MAX_PAYLOAD).contains(&len) && FRAME_HEADER + len == rest.len()
}

/// Decodes a snapshot; any defect, including a missing end frame, is an error.
pub fn decode_snapshot(buf: &[u8]) -> Result<Vec<Record>, Defect> {
    if buf.get(..SNAPSHOT_MAGIC.len()) != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(defect(0, "not a buyer snapshot (bad magic)"));
    }
    let mut records = Vec::new();
    let mut at = SNAPSHOT_MAGIC.len();
    loop {
        match read_frame(&buf[at..]) {
            Step::Frame(Frame::Record(r), used) => {
                records.push(r);
                at += used;
            }
            Step::Frame(Frame::End(count), used) => {
                if count != records.len() as u64 {
                    return Err(defect(at, "record count mismatch"));
                }
                if at + used != buf.len() {
                    return Err(defect(at + used, "data after end frame"));
                }
                return Ok(records);
            }
            Step::Short => return Err(defect(at, "snapshot is truncated")),
            Step::Bad(reason) => return Err(defect(at, reason)),
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
