use super::*;

fn mk_journal(n: usize) -> (Vec<u8>, Vec<Record>) {
    let mut buf = JOURNAL_MAGIC.to_vec();
    let records: Vec<Record> = (0..n)
        .map(|i| Record::new(format!("up{}", i % 3), format!("0x{i:064x}")))
        .collect();
    for r in &records {
        encode_record(&mut buf, r).unwrap();
    }
    (buf, records)
}

#[test]
fn journal_round_trips() {
    let (buf, records) = mk_journal(5);
    let d = decode_journal(&buf).unwrap();
    assert_eq!(d.records, records);
    assert_eq!(d.valid_len, buf.len() as u64);
    assert_eq!(d.torn, None);
}

#[test]
fn every_cut_of_the_last_frame_is_a_torn_tail() {
    let (full, records) = mk_journal(3);
    let (prefix, _) = mk_journal(2);
    for cut in prefix.len()..full.len() {
        let d = decode_journal(&full[..cut]).unwrap();
        assert_eq!(d.records, records[..2], "cut at {cut}");
        assert_eq!(d.valid_len, prefix.len() as u64);
        assert_eq!(d.torn.is_some(), cut > prefix.len());
    }
    // A zero-filled tail (size extended, data lost) is torn too.
    let mut zeroed = prefix.clone();
    zeroed.extend(std::iter::repeat_n(0u8, full.len() - prefix.len()));
    assert_eq!(decode_journal(&zeroed).unwrap().records, records[..2]);
    // So are a cut or zeroed header.
    for cut in 0..JOURNAL_MAGIC.len() {
        assert!(decode_journal(&full[..cut]).unwrap().records.is_empty());
    }
    assert!(decode_journal(&[0u8; 30]).unwrap().records.is_empty());
}

#[test]
fn damage_before_the_tail_is_corruption_with_its_offset() {
    let (mut buf, _) = mk_journal(3);
    let second = JOURNAL_MAGIC.len() + FRAME_HEADER + 1 + 2 + 3 + 2 + 66;
    buf[second + FRAME_HEADER + 4] ^= 0x40;
    let err = decode_journal(&buf).unwrap_err();
    assert_eq!(err.offset, second as u64);
    assert_eq!(err.reason, "checksum mismatch");

    let (mut bad_magic, _) = mk_journal(1);
    bad_magic[0] = b'X';
    assert_eq!(decode_journal(&bad_magic).unwrap_err().offset, 0);
    assert!(decode_journal(b"{\"consumed\":{}}").is_err());
}

#[test]
fn a_flipped_bit_in_the_last_frame_is_torn_not_corrupt() {
    let (mut buf, records) = mk_journal(2);
    let last = buf.len() - 3;
    buf[last] ^= 1;
    let d = decode_journal(&buf).unwrap();
    assert_eq!(d.records, records[..1]);
    assert_eq!(d.torn.unwrap().reason, "checksum mismatch");
}

#[test]
fn snapshot_round_trips_and_refuses_any_defect() {
    let records = vec![Record::new("a", "k1"), Record::new("b", "k2")];
    let buf = encode_snapshot(&records).unwrap();
    assert_eq!(decode_snapshot(&buf).unwrap(), records);
    for cut in 0..buf.len() {
        assert!(decode_snapshot(&buf[..cut]).is_err(), "cut {cut}");
    }
    let mut extra = buf.clone();
    extra.push(0);
    assert_eq!(
        decode_snapshot(&extra).unwrap_err().reason,
        "data after end frame"
    );
    let empty = encode_snapshot(&[]).unwrap();
    assert!(decode_snapshot(&empty).unwrap().is_empty());
}

#[test]
fn oversized_records_are_refused() {
    let mut out = Vec::new();
    let huge = Record::new("a", "k".repeat(MAX_PAYLOAD));
    assert_eq!(encode_record(&mut out, &huge), Err(TooLarge));
    assert!(out.is_empty());
}

#[test]
fn a_charged_spend_keeps_its_amount_through_journal_and_snapshot() {
    let records = vec![
        Record::spent_charged("llm", "k1", 61),
        Record::spent_charged("llm", "k2", 0),
        Record::spent_charged("llm", "k3", u128::MAX),
        Record::new("llm", "k4"),
        Record::marked("llm", "k5", Mark::Held),
    ];
    let mut buf = JOURNAL_MAGIC.to_vec();
    for r in &records {
        encode_record(&mut buf, r).unwrap();
    }
    assert_eq!(decode_journal(&buf).unwrap().records, records);
    let snap = encode_snapshot(&records).unwrap();
    assert_eq!(decode_snapshot(&snap).unwrap(), records);
}

#[test]
fn the_charged_frame_is_pinned_and_a_bad_amount_is_malformed() {
    let mut out = Vec::new();
    encode_record(&mut out, &Record::spent_charged("u", "k", 0x0102)).unwrap();
    let payload = &out[FRAME_HEADER..];
    let mut want = vec![6u8, 1, 0, b'u', 1, 0, b'k', 0x02, 0x01];
    want.extend([0u8; 14]);
    assert_eq!(payload, want.as_slice());
    // An amount on a mark other than spent is not written (only spends are charged).
    let mut held = Record::marked("u", "k", Mark::Held);
    held.charged = Some(5);
    let mut out = Vec::new();
    encode_record(&mut out, &held).unwrap();
    assert_eq!(&out[FRAME_HEADER..], &[3u8, 1, 0, b'u', 1, 0, b'k']);

    // A charged frame whose amount is short, and a plain spend with trailing bytes, are
    // malformed (corrupt, not guessed at).
    for payload in [
        vec![6u8, 1, 0, b'u', 1, 0, b'k', 1, 2, 3],
        vec![1u8, 1, 0, b'u', 1, 0, b'k', 0],
    ] {
        let mut buf = JOURNAL_MAGIC.to_vec();
        push_frame(&mut buf, &payload);
        encode_record(&mut buf, &Record::new("u", "k2")).unwrap();
        assert_eq!(
            decode_journal(&buf).unwrap_err().reason,
            "malformed record",
            "{payload:?}"
        );
    }
}
