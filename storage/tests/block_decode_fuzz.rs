//! Fuzz properties of stored-block decoding ([`StoredBlock::decode`]), driven by proptest:
//! arbitrary bytes, bytes laid out as a block around arbitrary transaction bytes and status
//! bytes, valid blocks, and valid encodings mutated (truncated, extended, bit-flipped,
//! length fields changed).
//!
//! Every decode goes through [`checked_decode`]: it never panics (a panic fails the
//! property), a refusal is a [`CorruptBlock`] that says why (the node reports it as
//! `E_STORAGE_CORRUPT`), and a block that decodes re-encodes to exactly the bytes decoded:
//! the version 1 layout is canonical (fixed-width fields, counts and lengths that must match
//! what follows, each transaction in its canonical encoding, no trailing bytes).

use aurigraph_ledger::executor::{Receipt, TxStatus};
use aurigraph_ledger::state::StateRoot;
use aurigraph_ledger::tx::{MAX_TX_BYTES, Operation, SignedTransaction};
use aurigraph_storage::block::{
    BLOCK_FORMAT, BlockHeader, CorruptBlock, StoredBlock, status_from_u8, tx_root,
};
use proptest::prelude::*;

use crate::tx_strategies::{address, multi_transfer, signed};

/// Cases per property: each runs in well under a second in a debug build.
const CASES: u32 = 512;

/// Offset of the transaction count: after the format, height, parent, state root, timestamp
/// and transactions root.
const COUNT_AT: usize = 1 + 8 + 32 + 32 + 8 + 32;
/// Offset of the first transaction's length.
const TXS_AT: usize = COUNT_AT + 4;
/// One receipt: status and fee charged.
const RECEIPT_LEN: usize = 1 + 8;

/// Every receipt status.
const STATUSES: [TxStatus; 9] = [
    TxStatus::Success,
    TxStatus::InsufficientFunds,
    TxStatus::BalanceOverflow,
    TxStatus::WrongChain,
    TxStatus::Invalid,
    TxStatus::ReservedSender,
    TxStatus::BadNonce,
    TxStatus::NonceExhausted,
    TxStatus::CannotPayFee,
];

/// Decodes `bytes` and checks what every decode must satisfy, whatever the bytes.
fn checked_decode(bytes: &[u8]) -> Result<StoredBlock, CorruptBlock> {
    let decoded = StoredBlock::decode(bytes);
    match &decoded {
        Err(e) => {
            assert!(!e.0.is_empty(), "a refusal without a reason");
            assert_eq!(e.to_string(), format!("stored block is corrupt: {}", e.0));
        }
        Ok(b) => {
            assert_eq!(
                b.encode(),
                bytes,
                "the decoded block re-encodes to other bytes"
            );
            assert_eq!(b.receipts.len(), b.txs.len(), "one receipt per transaction");
            for (t, r) in b.txs.iter().zip(&b.receipts) {
                assert_eq!(r.tx_hash, t.hash(), "a receipt names another transaction");
            }
        }
    }
    decoded
}

/// A signed transfer (any amount above zero) or multi-transfer, valid by every decoding
/// rule.
fn tx() -> impl Strategy<Value = SignedTransaction> {
    signed(prop_oneof![
        (address(), 1..=u64::MAX).prop_map(|(to, amount)| Operation::Transfer { to, amount }),
        multi_transfer(),
    ])
}

/// A block of up to four transactions, its transactions root computed, with receipts of any
/// status and fee.
fn block() -> impl Strategy<Value = StoredBlock> {
    (
        any::<(u64, [u8; 32], [u8; 32], u64)>(),
        proptest::collection::vec(
            (tx(), prop::sample::select(STATUSES.to_vec()), any::<u64>()),
            0..=4,
        ),
    )
        .prop_map(|((height, parent, state_root, timestamp_ms), entries)| {
            let txs: Vec<SignedTransaction> = entries.iter().map(|(t, ..)| t.clone()).collect();
            let receipts = entries
                .iter()
                .map(|(t, status, fee_charged)| Receipt {
                    tx_hash: t.hash(),
                    status: *status,
                    fee_charged: *fee_charged,
                })
                .collect();
            StoredBlock {
                header: BlockHeader {
                    height,
                    parent,
                    state_root: StateRoot(state_root),
                    timestamp_ms,
                    tx_root: tx_root(txs.iter().map(|t| t.hash())),
                },
                txs,
                receipts,
            }
        })
}

/// Offset of each transaction's length field in `b`'s encoding.
fn tx_offsets(b: &StoredBlock) -> Vec<usize> {
    let mut at = TXS_AT;
    b.txs
        .iter()
        .map(|t| {
            let here = at;
            at += 4 + t.size();
            here
        })
        .collect()
}

/// Offset of the receipts in `b`'s encoding.
fn receipts_at(b: &StoredBlock) -> usize {
    TXS_AT + b.txs.iter().map(|t| 4 + t.size()).sum::<usize>()
}

fn flip(bytes: &mut [u8], range: std::ops::Range<usize>, flips: &[(prop::sample::Index, u8)]) {
    for (at, bit) in flips {
        bytes[range.start + at.index(range.len())] ^= 1 << bit;
    }
}

type Flips = Vec<(prop::sample::Index, u8)>;

fn flips() -> impl Strategy<Value = Flips> {
    proptest::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..=8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Arbitrary bytes, most with the format byte and some with a small transaction count:
    /// never a panic, a reason or a canonical block. A wrong format byte or fewer bytes than
    /// the header are refused.
    #[test]
    fn fuzz_block_decode_arbitrary_bytes(
        formatted in any::<bool>(),
        count in prop::option::of(0u32..=4),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..=2048),
    ) {
        if formatted && !bytes.is_empty() {
            bytes[0] = BLOCK_FORMAT;
        }
        if let Some(n) = count.filter(|_| bytes.len() >= TXS_AT) {
            bytes[COUNT_AT..TXS_AT].copy_from_slice(&n.to_le_bytes());
        }
        let r = checked_decode(&bytes);
        if bytes.first().is_some_and(|&f| f != BLOCK_FORMAT) {
            prop_assert_eq!(r.unwrap_err().0, format!("unknown block format {}", bytes[0]));
        } else if bytes.len() < TXS_AT {
            prop_assert_eq!(r.unwrap_err().0, "truncated");
        }
    }

    /// A block laid out around arbitrary entries (valid transaction encodings or random
    /// bytes) and arbitrary status bytes: it decodes exactly when every entry decodes as a
    /// transaction and every status byte is a status; otherwise the reason names the first
    /// bad transaction's code, or the first unknown status.
    #[test]
    fn fuzz_block_decode_shaped_bytes_follow_the_layout(
        header in proptest::collection::vec(any::<u8>(), COUNT_AT - 1),
        entries in proptest::collection::vec(
            (
                prop_oneof![
                    tx().prop_map(|t| t.encoded().to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..=200),
                ],
                prop_oneof![any::<u8>(), prop::sample::select(STATUSES.map(|s| s as u8).to_vec())],
                any::<u64>(),
            ),
            0..=4,
        ),
    ) {
        let mut bytes = vec![BLOCK_FORMAT];
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (raw, ..) in &entries {
            bytes.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            bytes.extend_from_slice(raw);
        }
        for (_, status, fee) in &entries {
            bytes.push(*status);
            bytes.extend_from_slice(&fee.to_le_bytes());
        }
        let r = checked_decode(&bytes);
        let bad_tx = entries.iter().find_map(|(raw, ..)| SignedTransaction::decode(raw).err());
        let bad_status = entries.iter().find(|(_, s, _)| status_from_u8(*s).is_err());
        match (bad_tx, bad_status) {
            (Some(e), _) => {
                let reason = r.unwrap_err().0;
                prop_assert!(reason.contains(&format!("[{}]", e.code())), "{}", reason);
            }
            (None, Some((_, s, _))) => {
                prop_assert_eq!(r.unwrap_err().0, format!("unknown receipt status {s}"));
            }
            (None, None) => {
                let b = r.expect("valid entries and statuses decode");
                prop_assert_eq!(b.txs.len(), entries.len());
                for ((t, receipt), (raw, status, fee)) in b.txs.iter().zip(&b.receipts).zip(&entries) {
                    prop_assert_eq!(t.encoded(), raw.as_slice());
                    prop_assert_eq!(receipt.status as u8, *status);
                    prop_assert_eq!(receipt.fee_charged, *fee);
                }
            }
        }
    }

    /// A valid block decodes to itself (header, transactions, receipts) with the same hash.
    #[test]
    fn fuzz_block_decode_round_trips_valid_blocks(b in block()) {
        let d = checked_decode(&b.encode()).expect("a valid encoding decodes");
        prop_assert_eq!(d.hash(), b.hash());
        prop_assert_eq!(d, b);
    }

    /// Strict prefixes of a valid encoding (sixteen random cuts) are refused as truncated,
    /// bytes appended to it as trailing bytes.
    #[test]
    fn fuzz_block_decode_refuses_truncated_and_extended_encodings(
        b in block(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 16),
        extra in proptest::collection::vec(any::<u8>(), 1..=64),
    ) {
        let bytes = b.encode();
        for cut in cuts.iter().map(|c| c.index(bytes.len())) {
            prop_assert_eq!(checked_decode(&bytes[..cut]).unwrap_err().0, "truncated", "cut {}", cut);
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(checked_decode(&longer).unwrap_err().0, "trailing bytes");
    }

    /// One to eight bit flips anywhere in a valid encoding: refused with a reason, or
    /// decoded to another block that re-encodes to the flipped bytes.
    #[test]
    fn fuzz_block_decode_bit_flips(b in block(), flips in flips()) {
        let original = b.encode();
        let mut bytes = original.clone();
        let len = bytes.len();
        flip(&mut bytes, 0..len, &flips);
        let r = checked_decode(&bytes);
        if bytes == original {
            // The flips cancelled out.
            prop_assert_eq!(r, Ok(b));
        } else if let Ok(d) = r {
            prop_assert_ne!(d, b);
        }
    }

    /// Bit flips in the header fields always decode, to a block with another hash (the hash
    /// covers every header field); bit flips in the fees charged always decode, to a block
    /// with the same hash (receipts are stored, not hashed).
    #[test]
    fn fuzz_block_decode_header_and_fee_flips(b in block(), header_flips in flips(), fee_flips in flips()) {
        let original = b.encode();
        let mut bytes = original.clone();
        flip(&mut bytes, 1..COUNT_AT, &header_flips);
        let d = checked_decode(&bytes).expect("any header decodes");
        prop_assert_eq!(&d.txs, &b.txs);
        prop_assert_eq!(&d.receipts, &b.receipts);
        prop_assert_eq!(d.hash() == b.hash(), bytes == original);

        if !b.receipts.is_empty() {
            let mut bytes = original.clone();
            let receipts = receipts_at(&b);
            for (at, bit) in &fee_flips {
                // A byte of one of the fees: receipt k / 8, byte k % 8.
                let k = at.index(b.receipts.len() * 8);
                bytes[receipts + k / 8 * RECEIPT_LEN + 1 + k % 8] ^= 1 << bit;
            }
            let d = checked_decode(&bytes).expect("any fee decodes");
            prop_assert_eq!(d.header, b.header);
            prop_assert_eq!(d.hash(), b.hash());
            prop_assert_eq!(&d.txs, &b.txs);
            prop_assert_eq!(d.receipts == b.receipts, bytes == original);
        }
    }

    /// Length fields changed: another transaction count is always refused (the bytes that
    /// follow cannot add up); another length for a transaction cuts it short
    /// (`E_TX_TRUNCATED`), runs past the end (truncated), or takes in bytes after it
    /// (`E_TX_TRAILING_BYTES`, or `E_TX_TOO_LARGE` past the size limit); another status byte
    /// decodes exactly when it is a status.
    #[test]
    fn fuzz_block_decode_length_field_changes(
        b in block(),
        count in prop_oneof![0u32..=8, any::<u32>()],
        which in any::<prop::sample::Index>(),
        len in prop_oneof![
            // A few bytes or many away from the transaction's length, or any length.
            2 => (-64i64..=64).prop_map(Some),
            2 => (-(MAX_TX_BYTES as i64)..=2 * MAX_TX_BYTES as i64).prop_map(Some),
            1 => Just(None),
        ],
        any_len in any::<u32>(),
        status in prop_oneof![any::<u8>(), prop::sample::select(STATUSES.map(|s| s as u8).to_vec())],
    ) {
        let original = b.encode();
        if count as usize != b.txs.len() {
            let mut bytes = original.clone();
            bytes[COUNT_AT..TXS_AT].copy_from_slice(&count.to_le_bytes());
            checked_decode(&bytes).expect_err("another transaction count is refused");
        }
        if !b.txs.is_empty() {
            let i = which.index(b.txs.len());
            let at = tx_offsets(&b)[i];
            let size = b.txs[i].size();
            let len = match len {
                Some(delta) => size.saturating_add_signed(delta as isize),
                None => any_len as usize,
            };
            if len != size {
                let mut bytes = original.clone();
                bytes[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
                let reason = checked_decode(&bytes).unwrap_err().0;
                if len > size && at + 4 + len > bytes.len() {
                    prop_assert_eq!(reason, "truncated");
                } else {
                    let code = if len < size {
                        "E_TX_TRUNCATED"
                    } else if len > MAX_TX_BYTES {
                        "E_TX_TOO_LARGE"
                    } else {
                        "E_TX_TRAILING_BYTES"
                    };
                    prop_assert!(
                        reason.starts_with(&format!("transaction: [{code}]")),
                        "length {} for {}: {}",
                        len,
                        size,
                        reason
                    );
                }
            }
            let mut bytes = original.clone();
            bytes[receipts_at(&b) + i * RECEIPT_LEN] = status;
            let r = checked_decode(&bytes);
            match status_from_u8(status) {
                Ok(s) => prop_assert_eq!(r.map(|d| d.receipts[i].status), Ok(s)),
                Err(unknown) => prop_assert_eq!(r.map(|_| ()), Err(unknown)),
            }
        }
    }
}
