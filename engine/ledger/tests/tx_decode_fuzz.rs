//! Fuzz properties of transaction decoding ([`SignedTransaction::decode`]), driven by
//! proptest: arbitrary bytes, bytes shaped like the v1 layout, valid encodings, and valid
//! encodings mutated (truncated, extended, bit-flipped, output count changed, fields set to
//! values the rules refuse).
//!
//! Every decode goes through [`checked_decode`]: it never panics (a panic fails the
//! property), a refusal carries one of the stable decoding codes, and a transaction that
//! decodes re-encodes from its fields to exactly the bytes decoded, since the v1 encoding is
//! canonical (module docs of `aurigraph_ledger::tx`: fixed-width little-endian fields, the
//! output count equal to the outputs, no trailing bytes).

use aurigraph_ledger::tx::{
    Address, MAX_OUTPUTS, MAX_TX_BYTES, Operation, SMALL_ORDER_ENCODINGS, SignedTransaction,
    TX_VERSION, TxError,
};
use proptest::prelude::*;

use crate::tx_strategies::{address, amount, multi_transfer, operation, signed};

/// Cases per property: each runs in well under a second in a debug build.
const CASES: u32 = 512;

/// The codes decoding refuses with: every [`TxError`] code but `E_BAD_SIGNATURE`, since
/// decoding does not verify the signature.
const DECODE_CODES: [&str; 7] = [
    "E_TX_TRUNCATED",
    "E_TX_TOO_LARGE",
    "E_TX_VERSION",
    "E_TX_UNKNOWN_OP",
    "E_TX_TRAILING_BYTES",
    "E_TX_FIELD",
    "E_TX_SMALL_ORDER_ADDRESS",
];

/// Offset of the sender: after the version and the chain id.
const SENDER_AT: usize = 1 + 4;
/// Offset of the operation tag: after the version, chain id, sender, nonce and fee.
const OP_AT: usize = SENDER_AT + 32 + 8 + 8;
/// Offset of a multi-transfer's output count (of a transfer's recipient).
const COUNT_AT: usize = OP_AT + 1;
/// One output: recipient and amount.
const OUTPUT_LEN: usize = 32 + 8;
const SIG_LEN: usize = 64;

/// Decodes `bytes` and checks what every decode must satisfy, whatever the bytes.
fn checked_decode(bytes: &[u8]) -> Result<SignedTransaction, TxError> {
    let decoded = SignedTransaction::decode(bytes);
    match &decoded {
        Err(e) => assert!(
            DECODE_CODES.contains(&e.code()),
            "{e:?} refused with {}, not a decoding code",
            e.code()
        ),
        Ok(t) => {
            assert!(bytes.len() <= MAX_TX_BYTES);
            assert_eq!(t.encoded(), bytes);
            assert_eq!(
                t.tx().validate(),
                Ok(()),
                "a decoded transaction breaks a rule"
            );
            let again = SignedTransaction::from_parts(t.tx().clone(), *t.signature());
            assert_eq!(
                again.encoded(),
                bytes,
                "the decoded fields re-encode to other bytes"
            );
            assert_eq!(&again, t, "re-encoding changed the transaction or its hash");
        }
    }
    decoded
}

fn code(r: &Result<SignedTransaction, TxError>) -> Option<&'static str> {
    r.as_ref().err().map(TxError::code)
}

/// The outputs of a multi-transfer.
fn outputs(t: &SignedTransaction) -> &[(Address, u64)] {
    match &t.tx().op {
        Operation::MultiTransfer { outputs } => outputs,
        Operation::Transfer { .. } => panic!("not a multi-transfer"),
    }
}

/// A mutated encoding that still decodes is another transaction, signed by nobody.
fn assert_not_the_original(mutated: &SignedTransaction, original: &SignedTransaction) {
    assert_ne!(mutated, original);
    assert_ne!(mutated.hash(), original.hash());
    assert_eq!(
        mutated.verify().map_err(|e| e.code()),
        Err("E_BAD_SIGNATURE"),
        "a mutated transaction still verifies"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Arbitrary bytes, half of them starting with the version byte: never a panic, a
    /// decoding code or a canonical transaction; the size limit and the version byte are
    /// checked first.
    #[test]
    fn fuzz_tx_decode_arbitrary_bytes(
        versioned in any::<bool>(),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_TX_BYTES + 64),
    ) {
        if versioned && !bytes.is_empty() {
            bytes[0] = TX_VERSION;
        }
        let r = checked_decode(&bytes);
        if bytes.len() > MAX_TX_BYTES {
            prop_assert_eq!(code(&r), Some("E_TX_TOO_LARGE"));
        } else if bytes.is_empty() {
            prop_assert_eq!(code(&r), Some("E_TX_TRUNCATED"));
        } else if bytes[0] != TX_VERSION {
            prop_assert_eq!(code(&r), Some("E_TX_VERSION"));
        }
    }

    /// Random bytes laid out as version, header, operation tag (transfer, multi-transfer or
    /// any byte), output count and a body a few bytes short of, equal to or beyond what the
    /// tag and count call for: the outcome follows the layout. At the exact length the
    /// random fields decode, or break a field rule.
    #[test]
    fn fuzz_tx_decode_shaped_bytes_follow_the_layout(
        header in proptest::collection::vec(any::<u8>(), OP_AT - 1),
        tag in prop_oneof![Just(0x01u8), Just(0x02u8), any::<u8>()],
        count in 0..=MAX_OUTPUTS as u8 + 4,
        slack in prop_oneof![3 => Just(0i64), 1 => -3i64..=3],
        pool in proptest::collection::vec(any::<u8>(), (MAX_OUTPUTS + 4) * OUTPUT_LEN + SIG_LEN + 3),
    ) {
        let need = match tag {
            0x01 => OUTPUT_LEN + SIG_LEN,
            _ => usize::from(count) * OUTPUT_LEN + SIG_LEN,
        };
        let len = need.saturating_add_signed(slack as isize);
        let mut bytes = vec![TX_VERSION];
        bytes.extend_from_slice(&header);
        bytes.push(tag);
        if tag == 0x02 {
            bytes.push(count);
        }
        bytes.extend_from_slice(&pool[..len]);
        let r = checked_decode(&bytes);
        let expected = if tag != 0x01 && tag != 0x02 {
            Some("E_TX_UNKNOWN_OP")
        } else if tag == 0x02 && (count == 0 || usize::from(count) > MAX_OUTPUTS) {
            Some("E_TX_FIELD")
        } else if len < need {
            Some("E_TX_TRUNCATED")
        } else if len > need {
            Some("E_TX_TRAILING_BYTES")
        } else {
            None
        };
        match expected {
            Some(c) => prop_assert_eq!(code(&r), Some(c)),
            None => prop_assert!(
                matches!(code(&r), None | Some("E_TX_FIELD" | "E_TX_SMALL_ORDER_ADDRESS")),
                "{:?}",
                r
            ),
        }
    }

    /// A valid signed transaction decodes to itself (fields, signature, hash) and still
    /// verifies.
    #[test]
    fn fuzz_tx_decode_round_trips_valid_transactions(t in signed(operation())) {
        let d = checked_decode(t.encoded()).expect("a valid encoding decodes");
        prop_assert_eq!(&d, &t);
        prop_assert_eq!(d.hash(), t.hash());
        prop_assert_eq!(d.verify(), Ok(()));
    }

    /// Every strict prefix of a valid encoding is refused as truncated; bytes appended to it
    /// as trailing bytes, or as too large past the size limit.
    #[test]
    fn fuzz_tx_decode_refuses_truncated_and_extended_encodings(
        t in signed(operation()),
        extra in proptest::collection::vec(any::<u8>(), 1..=MAX_TX_BYTES),
    ) {
        let b = t.encoded();
        for cut in 0..b.len() {
            prop_assert_eq!(code(&checked_decode(&b[..cut])), Some("E_TX_TRUNCATED"), "cut {}", cut);
        }
        let mut longer = b.to_vec();
        longer.extend_from_slice(&extra);
        let expected = if longer.len() > MAX_TX_BYTES {
            "E_TX_TOO_LARGE"
        } else {
            "E_TX_TRAILING_BYTES"
        };
        prop_assert_eq!(code(&checked_decode(&longer)), Some(expected));
    }

    /// One to eight bit flips anywhere in a valid encoding: refused with a decoding code, or
    /// decoded to another transaction (another hash) that re-encodes to the flipped bytes
    /// and whose signature no longer verifies.
    #[test]
    fn fuzz_tx_decode_bit_flips(
        t in signed(operation()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..=8),
    ) {
        let mut b = t.encoded().to_vec();
        let len = b.len();
        for (at, bit) in &flips {
            b[at.index(len)] ^= 1 << bit;
        }
        let r = checked_decode(&b);
        if b.as_slice() == t.encoded() {
            // The flips cancelled out.
            prop_assert_eq!(r.as_ref(), Ok(&t));
        } else if let Ok(d) = &r {
            assert_not_the_original(d, &t);
        }
        if b[0] != TX_VERSION {
            prop_assert_eq!(code(&r), Some("E_TX_VERSION"));
        }
    }

    /// The output count of a multi-transfer set to another value with the outputs left
    /// alone: refused, as a field out of range (0 or above 16), trailing bytes (fewer
    /// outputs read than written) or truncated (more). With the outputs changed to match
    /// (the last one dropped, or one added), it decodes to that other transaction, which
    /// re-encodes identically and is not signed.
    #[test]
    fn fuzz_tx_decode_output_count_changes(
        t in signed(multi_transfer()),
        count in any::<u8>(),
        added in (address(), amount()),
    ) {
        let n = outputs(&t).len();
        let b = t.encoded();
        prop_assert_eq!(usize::from(b[COUNT_AT]), n);
        if usize::from(count) != n {
            let mut m = b.to_vec();
            m[COUNT_AT] = count;
            let expected = if count == 0 || usize::from(count) > MAX_OUTPUTS {
                "E_TX_FIELD"
            } else if usize::from(count) < n {
                "E_TX_TRAILING_BYTES"
            } else {
                "E_TX_TRUNCATED"
            };
            prop_assert_eq!(code(&checked_decode(&m)), Some(expected), "count {} for {}", count, n);
        }
        let body = COUNT_AT + 1;
        let sig = &b[b.len() - SIG_LEN..];
        if n >= 2 {
            let mut fewer = b[..body + (n - 1) * OUTPUT_LEN].to_vec();
            fewer[COUNT_AT] = (n - 1) as u8;
            fewer.extend_from_slice(sig);
            let d = checked_decode(&fewer).expect("one output fewer decodes");
            prop_assert_eq!(outputs(&d), &outputs(&t)[..n - 1]);
            assert_not_the_original(&d, &t);
        }
        if n < MAX_OUTPUTS && added.0 != t.tx().sender {
            let mut more = b[..b.len() - SIG_LEN].to_vec();
            more[COUNT_AT] = (n + 1) as u8;
            more.extend_from_slice(&added.0.0);
            more.extend_from_slice(&added.1.to_le_bytes());
            more.extend_from_slice(sig);
            let d = checked_decode(&more).expect("one output more decodes");
            prop_assert_eq!(&outputs(&d)[..n], outputs(&t));
            prop_assert_eq!(outputs(&d)[n], added);
            assert_not_the_original(&d, &t);
        }
    }

    /// A valid encoding with one field set to a value the rules refuse: a small-order sender
    /// or recipient, a zero amount, a payment to the sender itself. Each is refused with its
    /// code.
    #[test]
    fn fuzz_tx_decode_refuses_field_rule_breaks(
        t in signed(operation()),
        small in prop::sample::select(SMALL_ORDER_ENCODINGS.to_vec()),
        output in any::<prop::sample::Index>(),
    ) {
        let b = t.encoded();
        let n = match &t.tx().op {
            Operation::Transfer { .. } => 1,
            Operation::MultiTransfer { outputs } => outputs.len(),
        };
        // Where the chosen output's recipient and amount start.
        let to_at = match &t.tx().op {
            Operation::Transfer { .. } => COUNT_AT,
            Operation::MultiTransfer { .. } => COUNT_AT + 1 + output.index(n) * OUTPUT_LEN,
        };
        let amount_at = to_at + 32;
        let with = |at: usize, value: &[u8]| {
            let mut m = b.to_vec();
            m[at..at + value.len()].copy_from_slice(value);
            checked_decode(&m)
        };
        prop_assert_eq!(code(&with(SENDER_AT, &small)), Some("E_TX_SMALL_ORDER_ADDRESS"));
        prop_assert_eq!(code(&with(to_at, &small)), Some("E_TX_SMALL_ORDER_ADDRESS"));
        prop_assert_eq!(code(&with(amount_at, &0u64.to_le_bytes())), Some("E_TX_FIELD"));
        prop_assert_eq!(code(&with(to_at, &t.tx().sender.0)), Some("E_TX_FIELD"));
    }
}
