//! Test vectors.
//!
//! 1. **ZIP-215 edge cases.** Replicas verify signatures in batches or one at a time
//!    depending on load, so the two must accept exactly the same signatures. Under ZIP-215
//!    (`ed25519-consensus`) the verification equation is the cofactored
//!    `[8][s]B = [8]R + [8][k]A`, points may be encoded non-canonically, small-order points
//!    are allowed, and `s` must be canonical (`s < l`). The vectors below are the classic
//!    consensus edge cases: every public key `A` and commitment `R` taken from the 8-torsion
//!    points (8 canonical and 6 non-canonical encodings: 196 pairs) with `s = 0`, which
//!    ZIP-215 accepts (both sides of the equation are the identity) for any message,
//!    including the identity point as `A`; and a non-canonical `s`, which it refuses. Each
//!    is checked by single verification, by one raw `ed25519-consensus` batch (no fallback
//!    that could hide a disagreement), and by the admission's [`SignatureVerifier`].
//! 2. **Known answers** for the transaction encoding and hash and for small state roots,
//!    computed once and pinned. They fail when the canonical encoding, the hash, the signing
//!    domain or the root definition changes. A change of the transaction encoding must bump
//!    [`TX_VERSION`] (old transactions must keep decoding to the same hash, or be refused
//!    with `E_TX_VERSION`); a change of the root definition must bump its version string
//!    (`aurigraph/state-root/v1/...`). Then update the pinned values here, never before.

use aurigraph_ledger::admission::SignatureVerifier;
use aurigraph_ledger::state::{Account, Genesis, ShardedState, StateRoot, compute_root};
use aurigraph_ledger::tx::{
    Address, Operation, SIGNING_DOMAIN, SignedTransaction, TX_VERSION, Transaction,
    keypair_from_seed,
};
use ed25519_consensus::batch;
use ed25519_consensus::{Signature, VerificationKeyBytes};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N, "{s}");
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

// --- 1. ZIP-215 -------------------------------------------------------------------------

/// The canonical encodings of the eight 8-torsion points of edwards25519.
const TORSION_CANONICAL: [&str; 8] = [
    // The identity (0, 1): order 1.
    "0100000000000000000000000000000000000000000000000000000000000000",
    // (0, -1): order 2.
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    // (±sqrt(-1), 0): order 4.
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    // Order 8.
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Non-canonical encodings of small-order points: a sign bit set on x = 0, or y encoded as
/// y + p (p = 2^255 - 19).
const TORSION_NON_CANONICAL: [&str; 6] = [
    // The identity with the sign bit set.
    "0100000000000000000000000000000000000000000000000000000000000080",
    // (0, -1) with the sign bit set.
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    // y = p + 1 (the identity), sign bit clear and set.
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    // y = p (y = 0, order 4), sign bit clear and set.
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

/// The group order l, little-endian: the smallest non-canonical `s`.
const ORDER_L: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

fn small_order_encodings() -> Vec<[u8; 32]> {
    TORSION_CANONICAL
        .iter()
        .chain(TORSION_NON_CANONICAL.iter())
        .map(|h| unhex::<32>(h))
        .collect()
}

/// A transfer from `sender` carrying `signature` as is.
fn with_signature(sender: [u8; 32], nonce: u64, signature: [u8; 64]) -> SignedTransaction {
    let to = keypair_from_seed([200; 32]).1;
    SignedTransaction::from_parts(
        Transaction {
            chain_id: 1,
            sender: Address(sender),
            nonce,
            fee: 1,
            op: Operation::Transfer { to, amount: 1 },
        },
        signature,
    )
}

fn sig(r: [u8; 32], s: [u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&r);
    out[32..].copy_from_slice(&s);
    out
}

/// Real signatures from real keys.
fn honest(n: u8) -> Vec<SignedTransaction> {
    (0..n)
        .map(|i| {
            let (key, sender) = keypair_from_seed([i + 1; 32]);
            let to = keypair_from_seed([100 + i; 32]).1;
            Transaction {
                chain_id: 1,
                sender,
                nonce: u64::from(i),
                fee: 3,
                op: Operation::Transfer { to, amount: 7 },
            }
            .sign(&key)
        })
        .collect()
}

fn item(tx: &SignedTransaction) -> batch::Item {
    batch::Item::from((
        VerificationKeyBytes::from(tx.tx().sender.0),
        Signature::from(*tx.signature()),
        &tx.tx().signing_message()[..],
    ))
}

/// One raw batch verification of `txs`: no fallback to single checks.
fn raw_batch_ok(txs: &[&SignedTransaction]) -> bool {
    let mut v = batch::Verifier::new();
    for t in txs {
        v.queue(item(t));
    }
    v.verify(rand_core_06::OsRng).is_ok()
}

fn verifier(threads: usize) -> SignatureVerifier {
    SignatureVerifier::new(Some(threads), 16).unwrap()
}

#[test]
fn the_encodings_are_distinct_and_the_identity_is_a_valid_key() {
    let all = small_order_encodings();
    for (i, a) in all.iter().enumerate() {
        assert!(!all[..i].contains(a), "{} twice", hex(a));
        // ZIP-215 accepts every one of them as a verification key.
        assert!(
            ed25519_consensus::VerificationKey::try_from(*a).is_ok(),
            "{} refused as a key",
            hex(a)
        );
    }
}

#[test]
fn small_order_keys_and_commitments_with_s_zero_verify_singly_and_in_batches() {
    let honest = honest(4);
    let mut cases = Vec::new();
    for (i, a) in small_order_encodings().into_iter().enumerate() {
        for (j, r) in small_order_encodings().into_iter().enumerate() {
            let tx = with_signature(a, (i * 14 + j) as u64, sig(r, [0; 32]));
            // Single verification (the transaction's own check).
            assert!(
                tx.verify().is_ok(),
                "single: A={} R={} refused",
                hex(&a),
                hex(&r)
            );
            // A raw batch of this one signature, and of it among honest ones.
            assert!(raw_batch_ok(&[&tx]), "batch: A={} R={}", hex(&a), hex(&r));
            let mut mixed: Vec<&SignedTransaction> = honest.iter().collect();
            mixed.insert(2, &tx);
            assert!(
                raw_batch_ok(&mixed),
                "mixed batch: A={} R={}",
                hex(&a),
                hex(&r)
            );
            cases.push(tx);
        }
    }
    assert_eq!(cases.len(), 196);
    // All 196 in one raw batch, and through the admission's verifier on 1 and 2 threads.
    assert!(raw_batch_ok(&cases.iter().collect::<Vec<_>>()));
    for threads in [1, 2] {
        let v = verifier(threads);
        assert_eq!(v.verify_batch(&cases), vec![true; 196]);
        assert_eq!(v.verify_each(&cases), vec![true; 196]);
    }
}

#[test]
fn the_identity_key_signature_is_valid_for_any_message() {
    // A = identity, R = identity, s = 0: [8][0]B = [8]R + [8][k]A = identity for every k,
    // so it verifies whatever the transaction says (no one holds this key's secret, yet
    // anyone can sign for it: funds sent to a small-order address are anyone's).
    let identity = unhex::<32>(TORSION_CANONICAL[0]);
    let txs: Vec<_> = (0..5)
        .map(|n| with_signature(identity, n, sig(identity, [0; 32])))
        .collect();
    assert!(txs.iter().all(|t| t.verify().is_ok()));
    assert!(raw_batch_ok(&txs.iter().collect::<Vec<_>>()));
    assert_eq!(verifier(2).verify_batch(&txs), vec![true; 5]);
}

#[test]
fn refused_edge_cases_are_refused_by_both() {
    let identity = unhex::<32>(TORSION_CANONICAL[0]);
    let l = unhex::<32>(ORDER_L);
    let mut l_plus_one = l;
    l_plus_one[0] += 1;
    let mut high_bit = [0u8; 32];
    high_bit[31] = 0x80;
    let real = honest(1).remove(0);
    let bad: Vec<(&str, SignedTransaction)> = vec![
        // s = l would satisfy the equation ([l]B is the identity) but is not canonical.
        ("s = l", with_signature(identity, 0, sig(identity, l))),
        (
            "s = l + 1",
            with_signature(identity, 1, sig(identity, l_plus_one)),
        ),
        (
            "s with the top bit set",
            with_signature(identity, 2, sig(identity, high_bit)),
        ),
        // A prime-order key with R = identity, s = 0: [8][k]A is not the identity.
        (
            "real key, R = identity, s = 0",
            with_signature(real.tx().sender.0, 0, sig(identity, [0; 32])),
        ),
        // y = 2 is not the y of any curve point: not a key.
        ("A not a point", {
            let mut a = [0u8; 32];
            a[0] = 2;
            with_signature(a, 0, sig(identity, [0; 32]))
        }),
        // A real signature moved to another nonce.
        (
            "real signature, other message",
            with_signature(real.tx().sender.0, 9, *real.signature()),
        ),
    ];
    for (what, tx) in &bad {
        assert!(tx.verify().is_err(), "{what}: single accepted it");
        assert!(!raw_batch_ok(&[tx]), "{what}: batch accepted it");
        let honest = honest(3);
        let mut mixed: Vec<&SignedTransaction> = honest.iter().collect();
        mixed.push(tx);
        assert!(!raw_batch_ok(&mixed), "{what}: mixed batch accepted it");
    }
    // Through the admission's verifier, mixed with valid edge cases and honest signatures:
    // exactly the refused ones come back false, batched as singly.
    let good_edge = with_signature(
        unhex::<32>(TORSION_NON_CANONICAL[2]),
        0,
        sig(unhex::<32>(TORSION_CANONICAL[4]), [0; 32]),
    );
    let mut txs: Vec<SignedTransaction> = honest(6);
    let mut expected = vec![true; 6];
    for (k, (_, tx)) in bad.into_iter().enumerate() {
        txs.insert(k * 2, tx);
        expected.insert(k * 2, false);
    }
    txs.push(good_edge);
    expected.push(true);
    for threads in [1, 2] {
        let v = verifier(threads);
        assert_eq!(v.verify_batch(&txs), expected);
        assert_eq!(v.verify_each(&txs), expected);
    }
}

// --- 2. Known answers ----------------------------------------------------------------------

/// Encoding v1 of the sample transfer: chain 1, sender = key of seed [7; 32], nonce 3,
/// fee 10, transfer of 500 to the key of seed [8; 32], signed (Ed25519 is deterministic).
const TRANSFER_ENCODED: &str = concat!(
    "0101000000ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea",
    "691446d22c03000000000000000a00000000000000011398f62c6d1a457c51ba",
    "6a4b5f3dbd2f69fca93216218dc8997e416bd17d93caf401000000000000cf76",
    "9cce86db004ec61094464399c61c127fd05aabb63053c2b58a0954c91e8dff3d",
    "9480d07ded9f594ef4f8f926104883bbee37432384c4c4ef1b39cd511801",
);
const TRANSFER_HASH: &str = "f9d4259806b8b6ae6f9d876c5f4b24fa1bb3501450483104340bb33786946125";
/// Encoding v1 of a multi-transfer: chain 42, sender = key of seed [9; 32], nonce 0, fee
/// 1, outputs (key of seed [10; 32], 1) and (key of seed [11; 32], 2^40).
const MULTI_ENCODED: &str = concat!(
    "012a000000fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702ea",
    "c835e9f61800000000000000000100000000000000020243a72e714401762df6",
    "6b68c26dfbdf2682aaec9f2474eca4613e424a0fbafd3c010000000000000066",
    "be7e332c7a453332bd9d0a7f7db055f5c5ef1a06ada66d98b39fb6810c473a00",
    "0000000001000013601e8dd668eb8360f60fa28278f3f1ec45a7af778de6ab1a",
    "0b5be5317f95883d8668af745dc834e187c4be82dc85825592d82e5875867748",
    "8908b354911b05",
);
const MULTI_HASH: &str = "b2aa489a51b537f8f0b1010e7f7501ccc7aad57a2013a9c0c19afc2fb8fd6e97";

fn sample_transfer() -> SignedTransaction {
    let (key, sender) = keypair_from_seed([7; 32]);
    let to = keypair_from_seed([8; 32]).1;
    Transaction {
        chain_id: 1,
        sender,
        nonce: 3,
        fee: 10,
        op: Operation::Transfer { to, amount: 500 },
    }
    .sign(&key)
}

fn sample_multi() -> SignedTransaction {
    let (key, sender) = keypair_from_seed([9; 32]);
    Transaction {
        chain_id: 42,
        sender,
        nonce: 0,
        fee: 1,
        op: Operation::MultiTransfer {
            outputs: vec![
                (keypair_from_seed([10; 32]).1, 1),
                (keypair_from_seed([11; 32]).1, 1 << 40),
            ],
        },
    }
    .sign(&key)
}

#[test]
fn transaction_encoding_and_hash_known_answers() {
    assert_eq!(
        TX_VERSION, 1,
        "the encoding version changed: re-pin the vectors below"
    );
    assert_eq!(SIGNING_DOMAIN, b"AURIGRAPH-TX-V1\0");
    for (tx, encoded, hash) in [
        (sample_transfer(), TRANSFER_ENCODED, TRANSFER_HASH),
        (sample_multi(), MULTI_ENCODED, MULTI_HASH),
    ] {
        assert_eq!(hex(tx.encoded()), encoded, "the v1 encoding changed");
        assert_eq!(tx.hash().to_string(), hash, "the transaction hash changed");
        // The hash is BLAKE3 of the signed encoding; the pinned bytes decode to the same
        // transaction and verify.
        assert_eq!(blake3::hash(tx.encoded()).as_bytes(), &tx.hash().0);
        let bytes: Vec<u8> = (0..encoded.len() / 2)
            .map(|i| u8::from_str_radix(&encoded[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let decoded = SignedTransaction::decode(&bytes).unwrap();
        assert_eq!(decoded, tx);
        decoded.verify().unwrap();
    }
}

#[test]
fn transaction_layout_follows_the_documented_fields() {
    let tx = sample_transfer();
    let b = tx.encoded();
    let t = tx.tx();
    assert_eq!(b[0], TX_VERSION);
    assert_eq!(&b[1..5], &1u32.to_le_bytes());
    assert_eq!(&b[5..37], &t.sender.0);
    assert_eq!(&b[37..45], &3u64.to_le_bytes());
    assert_eq!(&b[45..53], &10u64.to_le_bytes());
    assert_eq!(b[53], 0x01);
    assert_eq!(&b[54..86], &keypair_from_seed([8; 32]).1.0);
    assert_eq!(&b[86..94], &500u64.to_le_bytes());
    assert_eq!(&b[94..], tx.signature());
    assert_eq!(b.len(), 158);
    let mut message = SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(&b[..94]);
    assert_eq!(t.signing_message(), message);
}

/// Root of the empty state.
const EMPTY_ROOT: &str = "9cfb5f24c0c88c4ac49afb4de1065d5663fc104643f523711714c3800deda0be";
/// Root after genesis: 1,000 to the key of seed [7; 32], 250 to the key of seed [8; 32].
const GENESIS_ROOT: &str = "ba96a1a5c761284a82299e844c4cd053067aba89b4d1134b33baab76796b18f4";
/// Root after a transfer of 500 (fee 10, nonce 0) from the first to the second commits on
/// that genesis (three accounts: sender, recipient and the fee sink).
const AFTER_TRANSFER_ROOT: &str =
    "7711843d6c9f480ed25a3db5d42bd23de9dbce39b5431dddeeab26444bd2d3d4";

/// The state root recomputed from its written definition (`state::root` module docs),
/// with BLAKE3 alone: a second implementation to check the first against.
fn root_from_the_definition(accounts: &[(Address, Account)]) -> [u8; 32] {
    let leaf_key = *blake3::hash(b"aurigraph/state-root/v1/leaf").as_bytes();
    let node_key = *blake3::hash(b"aurigraph/state-root/v1/node").as_bytes();
    let mut sorted: Vec<_> = accounts
        .iter()
        .filter(|(_, a)| *a != Account::default())
        .collect();
    sorted.sort_by_key(|(a, _)| a.0);
    let mut leaves = std::collections::BTreeMap::<usize, blake3::Hasher>::new();
    for (address, account) in sorted {
        let bucket = usize::from(address.0[0]) * 256 + usize::from(address.0[1]);
        let h = leaves
            .entry(bucket)
            .or_insert_with(|| blake3::Hasher::new_keyed(&leaf_key));
        h.update(&address.0);
        h.update(&account.balance.to_le_bytes());
        h.update(&account.nonce.to_le_bytes());
    }
    let node = |l: &[u8; 32], r: &[u8; 32]| {
        let mut m = [0u8; 64];
        m[..32].copy_from_slice(l);
        m[32..].copy_from_slice(r);
        *blake3::keyed_hash(&node_key, &m).as_bytes()
    };
    // Level by level from the 65,536 leaves; an all-empty subtree has a fixed digest.
    let mut empty = *blake3::keyed_hash(&leaf_key, b"").as_bytes();
    let mut level: std::collections::BTreeMap<usize, [u8; 32]> = leaves
        .into_iter()
        .map(|(b, h)| (b, *h.finalize().as_bytes()))
        .collect();
    for _ in 0..16 {
        let mut up = std::collections::BTreeMap::new();
        for &i in level.keys() {
            let parent = i / 2;
            if up.contains_key(&parent) {
                continue;
            }
            let l = level.get(&(2 * parent)).unwrap_or(&empty);
            let r = level.get(&(2 * parent + 1)).unwrap_or(&empty);
            up.insert(parent, node(l, r));
        }
        empty = node(&empty, &empty);
        level = up;
    }
    level.get(&0).copied().unwrap_or(empty)
}

#[test]
fn state_root_known_answers() {
    let a = keypair_from_seed([7; 32]);
    let b = keypair_from_seed([8; 32]).1;
    let genesis = Genesis {
        chain_id: 1,
        allocations: vec![(a.1, 1_000), (b, 250)],
    };
    let empty = ShardedState::new(1, 256).unwrap();
    let mut state = ShardedState::from_genesis(&genesis, 16).unwrap();
    let genesis_root = state.root();

    let tx = Transaction {
        chain_id: 1,
        sender: a.1,
        nonce: 0,
        fee: 10,
        op: Operation::Transfer { to: b, amount: 500 },
    }
    .sign(&a.0);
    use aurigraph_ledger::executor::{BlockExecutor, SequentialExecutor};
    let out = SequentialExecutor
        .execute_and_commit(&mut state, &[std::sync::Arc::new(tx)])
        .unwrap();
    let after = out.state_root;

    // The implementation agrees with the written definition...
    assert_eq!(root_from_the_definition(&[]), empty.root().0);
    let accounts: Vec<(Address, Account)> = state.iter().map(|(a, acc)| (*a, *acc)).collect();
    assert_eq!(accounts.len(), 3, "sender, recipient and the fee sink");
    assert_eq!(root_from_the_definition(&accounts), after.0);
    assert_eq!(
        compute_root(accounts.iter().map(|(a, acc)| (a, acc))),
        after
    );
    let at_genesis = [
        (
            a.1,
            Account {
                balance: 1_000,
                nonce: 0,
            },
        ),
        (
            b,
            Account {
                balance: 250,
                nonce: 0,
            },
        ),
    ];
    assert_eq!(root_from_the_definition(&at_genesis), genesis_root.0);

    // ... and both with the pinned values.
    assert_eq!(empty.root(), StateRoot::empty());
    assert_eq!(empty.root().to_string(), EMPTY_ROOT);
    assert_eq!(genesis_root.to_string(), GENESIS_ROOT);
    assert_eq!(after.to_string(), AFTER_TRANSFER_ROOT);
}

/// ZIP-215 lets anyone sign for a small-order key (above), so the ledger refuses every one
/// of the 14 encodings as a sender and as a recipient: decoding answers
/// `E_TX_SMALL_ORDER_ADDRESS`, and an executor handed such a transaction anyway (a faulty
/// proposer) skips it as invalid, every executor alike. The engine's table is checked against
/// this file's own list.
#[test]
fn small_order_addresses_are_refused_as_sender_and_recipient() {
    use aurigraph_ledger::executor::{
        BlockExecutor, ScheduledExecutor, SequentialExecutor, TxStatus,
    };
    use aurigraph_ledger::tx::{SMALL_ORDER_ENCODINGS, is_small_order};
    use std::sync::Arc;

    let mut ours = small_order_encodings();
    let mut engine: Vec<[u8; 32]> = SMALL_ORDER_ENCODINGS.to_vec();
    ours.sort();
    engine.sort();
    assert_eq!(ours, engine, "the engine's table is the 14 encodings");

    let (key, sender) = keypair_from_seed([9; 32]);
    let honest_to = keypair_from_seed([10; 32]).1;
    assert!(!is_small_order(&sender) && !is_small_order(&honest_to));
    let mut block = Vec::new();
    for (i, a) in small_order_encodings().into_iter().enumerate() {
        // As the recipient, of a transfer and of a multi-transfer, properly signed.
        let to_small = Transaction {
            chain_id: 1,
            sender,
            nonce: i as u64,
            fee: 1,
            op: Operation::Transfer {
                to: Address(a),
                amount: 5,
            },
        };
        let multi = Transaction {
            op: Operation::MultiTransfer {
                outputs: vec![(honest_to, 1), (Address(a), 1)],
            },
            ..to_small.clone()
        };
        // As the sender, with the signature (identity R, s = 0) that verifies for any message.
        let from_small = with_signature(a, 0, sig(unhex::<32>(TORSION_CANONICAL[0]), [0; 32]));
        for stx in [to_small.sign(&key), multi.sign(&key), from_small] {
            let err = SignedTransaction::decode(stx.encoded()).unwrap_err();
            assert_eq!(err.code(), "E_TX_SMALL_ORDER_ADDRESS", "{}: {err}", hex(&a));
            assert!(stx.tx().validate().is_err());
            block.push(Arc::new(stx));
        }
    }
    let state = ShardedState::from_genesis(
        &Genesis {
            chain_id: 1,
            allocations: vec![(sender, 1_000_000)],
        },
        16,
    )
    .unwrap();
    let executors: [Box<dyn BlockExecutor>; 2] = [
        Box::new(SequentialExecutor::new()),
        Box::new(ScheduledExecutor::new(2).unwrap()),
    ];
    for exec in &executors {
        let out = exec.execute(&state, 1, &block).unwrap();
        assert!(out.receipts.iter().all(|r| r.status == TxStatus::Invalid));
        assert!(out.write_set.is_empty(), "nothing moves");
    }
}
