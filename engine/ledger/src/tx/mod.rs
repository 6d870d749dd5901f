//! Transactions: the canonical encoding (v1), signing, hashing and decoding.
//!
//! ## Encoding v1 (all integers little-endian)
//!
//! ```text
//! unsigned  := version:u8 (= 1) | chain_id:u32 | sender:[u8; 32] | nonce:u64 | fee:u64 | op
//! op        := 0x01 | to:[u8; 32] | amount:u64                           (Transfer)
//!            | 0x02 | count:u8 (1..=16) | (to:[u8; 32] | amount:u64)*count (MultiTransfer)
//! signed    := unsigned | signature:[u8; 64]
//! ```
//!
//! - The sender is the account's Ed25519 verification key; the signature is Ed25519 over
//!   `SIGNING_DOMAIN | unsigned` (domain separation: a transaction signature can never be
//!   replayed as a signature of anything else).
//! - The transaction hash is BLAKE3 over the whole signed encoding.
//! - Signatures are checked under ZIP-215 rules (`ed25519-consensus`), for which single and
//!   batch verification accept exactly the same signatures, so replicas never disagree.
//! - Decoding is strict: no trailing bytes, no unknown version or operation, amounts above
//!   zero, no transfer to oneself, no small-order point as sender or recipient
//!   ([`SMALL_ORDER_ENCODINGS`]: ZIP-215 lets anyone sign for those), at most
//!   [`MAX_TX_BYTES`] bytes. It never panics.
//!
//! ## Stability
//!
//! The encoding, the signing message and the hash are consensus rules: every replica must
//! derive the same bytes and the same hash from a transaction forever. Any change to them
//! (a field, its width or order, a new operation's layout, the signing domain) must bump
//! [`TX_VERSION`], and version 1 transactions must keep decoding to the same hash.
//! `engine/ledger/tests/vectors.rs` pins known answers (encodings and hashes of a transfer and a
//! multi-transfer) so an accidental change fails a test; update them only together with
//! a version bump. The same file holds the ZIP-215 edge cases (small-order and
//! non-canonical points, non-canonical `s`) on which batch and single verification must
//! agree.

use std::fmt;

use serde::{Deserialize, Serialize};

mod admitted;

pub use admitted::AdmittedTx;

/// Current encoding version. Bump it with any change to the encoding, the signing message
/// or the hash (see the module docs' *Stability*).
pub const TX_VERSION: u8 = 1;
/// Domain separation tag prepended to the unsigned encoding before signing.
pub const SIGNING_DOMAIN: &[u8; 16] = b"AURIGRAPH-TX-V1\0";
/// Largest accepted signed encoding, in bytes.
pub const MAX_TX_BYTES: usize = 1024;
/// Most outputs of a [`Operation::MultiTransfer`].
pub const MAX_OUTPUTS: usize = 16;

/// The 14 encodings of small-order points that ZIP-215 accepts as verification keys: the
/// eight points of order 1, 2, 4 and 8 (canonical), then the identity and (0, -1) with the
/// sign bit set, and y = p + 1 and y = p, each with the sign bit clear and set. For such a
/// key a signature exists that verifies for every message (`engine/ledger/tests/vectors.rs`), so
/// whoever sends from, or is paid at, one of these addresses gives the funds to anyone:
/// [`Transaction::validate`] refuses them as sender and as recipient.
pub const SMALL_ORDER_ENCODINGS: [[u8; 32]; 14] = [
    from_hex("0100000000000000000000000000000000000000000000000000000000000000"),
    from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    from_hex("0000000000000000000000000000000000000000000000000000000000000000"),
    from_hex("0000000000000000000000000000000000000000000000000000000000000080"),
    from_hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    from_hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    from_hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    from_hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    from_hex("0100000000000000000000000000000000000000000000000000000000000080"),
    from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    from_hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    from_hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    from_hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    from_hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
];

/// Their first eight bytes (little-endian), a cheap filter in front of the full comparison.
const SMALL_ORDER_HEADS: [u64; 14] = {
    let mut out = [0u64; 14];
    let mut i = 0;
    while i < 14 {
        let e = &SMALL_ORDER_ENCODINGS[i];
        out[i] = u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        i += 1;
    }
    out
};

const fn from_hex(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64, "32 bytes of hex");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Whether `address` is one of [`SMALL_ORDER_ENCODINGS`].
pub fn is_small_order(address: &Address) -> bool {
    let mut head = [0u8; 8];
    head.copy_from_slice(&address.0[..8]);
    SMALL_ORDER_HEADS.contains(&u64::from_le_bytes(head))
        && SMALL_ORDER_ENCODINGS.contains(&address.0)
}

const HEADER_LEN: usize = 1 + 4 + 32 + 8 + 8;
const SIG_LEN: usize = 64;

/// An account address: the account's Ed25519 verification key bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address(pub [u8; 32]);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl Address {
    /// Full lower-case hex.
    pub fn to_hex(&self) -> String {
        hex32(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s).map(Address)
    }
}

/// A transaction hash (BLAKE3 of the signed encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxHash(pub [u8; 32]);

impl fmt::Debug for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxHash({})", hex32(&self.0))
    }
}

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex32(&self.0))
    }
}

impl TxHash {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s).map(TxHash)
    }
}

/// Lower-case hex of 32 bytes, in one allocation (a node formats the hash of every
/// transaction it accepts: a `format!` per byte showed in its profile).
fn hex32(b: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for x in b {
        out.push(char::from(DIGITS[usize::from(x >> 4)]));
        out.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    out
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Moves `amount` from the sender to `to`.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount in base units, above zero.
        amount: u64,
    },
    /// Moves amounts from the sender to up to [`MAX_OUTPUTS`] recipients, all or nothing.
    MultiTransfer {
        /// Recipients and amounts.
        outputs: Vec<(Address, u64)>,
    },
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Chain identifier (a transaction for another chain is refused).
    pub chain_id: u32,
    /// Sender (its verification key).
    pub sender: Address,
    /// Sender's nonce: its transactions execute in nonce order, each nonce once.
    pub nonce: u64,
    /// Fee in base units, paid to the fee sink whether the operation succeeds or not.
    pub fee: u64,
    /// The operation.
    pub op: Operation,
}

/// Why bytes are not a valid transaction. Each variant has a stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Fewer bytes than the encoding needs.
    #[error("transaction truncated: {0}")]
    Truncated(&'static str),
    /// More bytes than [`MAX_TX_BYTES`].
    #[error("transaction of {0} bytes exceeds the {MAX_TX_BYTES}-byte limit")]
    TooLarge(usize),
    /// Unknown encoding version.
    #[error("unsupported transaction version {0}")]
    Version(u8),
    /// Unknown operation tag.
    #[error("unknown operation tag {0:#04x}")]
    UnknownOp(u8),
    /// Bytes after the signature.
    #[error("{0} trailing bytes after the signature")]
    Trailing(usize),
    /// A field outside its valid range.
    #[error("invalid field: {0}")]
    Field(&'static str),
    /// The sender or a recipient is a small-order point (see [`SMALL_ORDER_ENCODINGS`]).
    #[error("{0} is a small-order point: anyone can sign for it")]
    SmallOrderAddress(&'static str),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

impl TxError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Truncated(_) => "E_TX_TRUNCATED",
            TxError::TooLarge(_) => "E_TX_TOO_LARGE",
            TxError::Version(_) => "E_TX_VERSION",
            TxError::UnknownOp(_) => "E_TX_UNKNOWN_OP",
            TxError::Trailing(_) => "E_TX_TRAILING_BYTES",
            TxError::Field(_) => "E_TX_FIELD",
            TxError::SmallOrderAddress(_) => "E_TX_SMALL_ORDER_ADDRESS",
            TxError::BadSignature => "E_BAD_SIGNATURE",
        }
    }
}

impl Transaction {
    /// Checks the field rules that decoding enforces.
    pub fn validate(&self) -> Result<(), TxError> {
        if is_small_order(&self.sender) {
            return Err(TxError::SmallOrderAddress("the sender"));
        }
        match &self.op {
            Operation::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(TxError::Field("amount must be above zero"));
                }
                if *to == self.sender {
                    return Err(TxError::Field("transfer to the sender itself"));
                }
                if is_small_order(to) {
                    return Err(TxError::SmallOrderAddress("the recipient"));
                }
            }
            Operation::MultiTransfer { outputs } => {
                if outputs.is_empty() || outputs.len() > MAX_OUTPUTS {
                    return Err(TxError::Field("a multi-transfer has 1 to 16 outputs"));
                }
                for (to, amount) in outputs {
                    if *amount == 0 {
                        return Err(TxError::Field("amount must be above zero"));
                    }
                    if *to == self.sender {
                        return Err(TxError::Field("transfer to the sender itself"));
                    }
                    if is_small_order(to) {
                        return Err(TxError::SmallOrderAddress("a recipient"));
                    }
                }
                let total = outputs
                    .iter()
                    .try_fold(0u64, |acc, (_, a)| acc.checked_add(*a));
                if total.is_none() {
                    return Err(TxError::Field("outputs overflow u64"));
                }
            }
        }
        Ok(())
    }

    /// The canonical unsigned encoding.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 1 + 41 + SIG_LEN);
        self.encode_unsigned_into(&mut out);
        out
    }

    fn encode_unsigned_into(&self, out: &mut Vec<u8>) {
        out.push(TX_VERSION);
        out.extend_from_slice(&self.chain_id.to_le_bytes());
        out.extend_from_slice(&self.sender.0);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.fee.to_le_bytes());
        match &self.op {
            Operation::Transfer { to, amount } => {
                out.push(0x01);
                out.extend_from_slice(&to.0);
                out.extend_from_slice(&amount.to_le_bytes());
            }
            Operation::MultiTransfer { outputs } => {
                out.push(0x02);
                out.push(outputs.len().min(255) as u8);
                for (to, amount) in outputs {
                    out.extend_from_slice(&to.0);
                    out.extend_from_slice(&amount.to_le_bytes());
                }
            }
        }
    }

    /// The message an Ed25519 signature covers: `SIGNING_DOMAIN | unsigned encoding`.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(SIGNING_DOMAIN.len() + HEADER_LEN + 42);
        m.extend_from_slice(SIGNING_DOMAIN);
        self.encode_unsigned_into(&mut m);
        m
    }

    /// Signs with `key`, whose verification key must be the sender.
    pub fn sign(self, key: &ed25519_consensus::SigningKey) -> SignedTransaction {
        let sig = key.sign(&self.signing_message());
        SignedTransaction::from_parts(self, sig.to_bytes())
    }

    /// The accounts the operation reads or writes: the sender first, then recipients in
    /// order, without duplicates.
    pub fn accounts(&self) -> Vec<Address> {
        let mut v = vec![self.sender];
        match &self.op {
            Operation::Transfer { to, .. } => v.push(*to),
            Operation::MultiTransfer { outputs } => {
                for (to, _) in outputs {
                    if !v.contains(to) {
                        v.push(*to);
                    }
                }
            }
        }
        v
    }

    /// Total amount the operation moves out of the sender (excluding the fee).
    pub fn amount_out(&self) -> u64 {
        match &self.op {
            Operation::Transfer { amount, .. } => *amount,
            Operation::MultiTransfer { outputs } => outputs
                .iter()
                .map(|(_, a)| *a)
                .fold(0u64, u64::saturating_add),
        }
    }
}

/// A signed transaction with its hash and encoding cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    tx: Transaction,
    signature: [u8; 64],
    hash: TxHash,
    encoded: Vec<u8>,
}

impl SignedTransaction {
    /// Assembles a signed transaction (the signature is not checked here; see
    /// [`SignedTransaction::verify`] and the admission's batch verification).
    pub fn from_parts(tx: Transaction, signature: [u8; 64]) -> Self {
        let mut encoded = Vec::with_capacity(HEADER_LEN + 42 + SIG_LEN);
        tx.encode_unsigned_into(&mut encoded);
        encoded.extend_from_slice(&signature);
        let hash = TxHash(*blake3::hash(&encoded).as_bytes());
        Self {
            tx,
            signature,
            hash,
            encoded,
        }
    }

    /// Decodes a signed transaction strictly (see the module docs). The signature is not
    /// verified.
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge(bytes.len()));
        }
        let mut r = Reader { b: bytes, at: 0 };
        let version = r.u8("version")?;
        if version != TX_VERSION {
            return Err(TxError::Version(version));
        }
        let chain_id = r.u32("chain_id")?;
        let sender = Address(r.arr32("sender")?);
        let nonce = r.u64("nonce")?;
        let fee = r.u64("fee")?;
        let op = match r.u8("operation tag")? {
            0x01 => Operation::Transfer {
                to: Address(r.arr32("recipient")?),
                amount: r.u64("amount")?,
            },
            0x02 => {
                let n = r.u8("output count")? as usize;
                if n == 0 || n > MAX_OUTPUTS {
                    return Err(TxError::Field("a multi-transfer has 1 to 16 outputs"));
                }
                let mut outputs = Vec::with_capacity(n);
                for _ in 0..n {
                    outputs.push((Address(r.arr32("recipient")?), r.u64("amount")?));
                }
                Operation::MultiTransfer { outputs }
            }
            t => return Err(TxError::UnknownOp(t)),
        };
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(SIG_LEN, "signature")?);
        if r.at != bytes.len() {
            return Err(TxError::Trailing(bytes.len() - r.at));
        }
        let tx = Transaction {
            chain_id,
            sender,
            nonce,
            fee,
            op,
        };
        tx.validate()?;
        Ok(Self {
            tx,
            signature,
            hash: TxHash(*blake3::hash(bytes).as_bytes()),
            encoded: bytes.to_vec(),
        })
    }

    /// Checks the signature alone (ZIP-215 rules, identical to batch verification).
    pub fn verify(&self) -> Result<(), TxError> {
        let vk = ed25519_consensus::VerificationKey::try_from(self.tx.sender.0)
            .map_err(|_| TxError::BadSignature)?;
        let sig = ed25519_consensus::Signature::from(self.signature);
        vk.verify(&sig, &self.tx.signing_message())
            .map_err(|_| TxError::BadSignature)
    }

    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    /// The signature bytes.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The hash.
    pub fn hash(&self) -> TxHash {
        self.hash
    }

    /// The canonical signed encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.encoded.len()
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TxError> {
        let end = self.at.checked_add(n).ok_or(TxError::Truncated(what))?;
        let s = self.b.get(self.at..end).ok_or(TxError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, TxError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, TxError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, TxError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }
    fn arr32(&mut self, what: &'static str) -> Result<[u8; 32], TxError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, what)?);
        Ok(a)
    }
}

/// A deterministic key pair from a seed (tests, the workload generator, genesis tools).
pub fn keypair_from_seed(seed: [u8; 32]) -> (ed25519_consensus::SigningKey, Address) {
    let sk = ed25519_consensus::SigningKey::from(seed);
    let addr = Address(sk.verification_key().to_bytes());
    (sk, addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ed25519_consensus::SigningKey, SignedTransaction) {
        let (sk, sender) = keypair_from_seed([7; 32]);
        let (_, to) = keypair_from_seed([8; 32]);
        let tx = Transaction {
            chain_id: 1,
            sender,
            nonce: 3,
            fee: 10,
            op: Operation::Transfer { to, amount: 500 },
        };
        let s = tx.sign(&sk);
        (sk, s)
    }

    #[test]
    fn round_trip_and_verify() {
        let (_, s) = sample();
        let d = SignedTransaction::decode(s.encoded()).unwrap();
        assert_eq!(d, s);
        assert_eq!(d.hash(), s.hash());
        d.verify().unwrap();
        assert_eq!(s.size(), HEADER_LEN + 1 + 40 + 64);
    }

    #[test]
    fn tampering_breaks_the_signature_and_the_hash() {
        let (_, s) = sample();
        let mut b = s.encoded().to_vec();
        b[HEADER_LEN + 1 + 32] ^= 1; // amount
        let d = SignedTransaction::decode(&b).unwrap();
        assert_ne!(d.hash(), s.hash());
        assert_eq!(d.verify().unwrap_err().code(), "E_BAD_SIGNATURE");
    }

    #[test]
    fn strict_decoding_refuses_with_stable_codes() {
        let (_, s) = sample();
        let b = s.encoded();
        for cut in 0..b.len() {
            assert_eq!(
                SignedTransaction::decode(&b[..cut]).unwrap_err().code(),
                "E_TX_TRUNCATED"
            );
        }
        let mut t = b.to_vec();
        t.push(0);
        assert_eq!(
            SignedTransaction::decode(&t).unwrap_err().code(),
            "E_TX_TRAILING_BYTES"
        );
        let mut v = b.to_vec();
        v[0] = 2;
        assert_eq!(
            SignedTransaction::decode(&v).unwrap_err().code(),
            "E_TX_VERSION"
        );
        let mut o = b.to_vec();
        o[HEADER_LEN] = 9;
        assert_eq!(
            SignedTransaction::decode(&o).unwrap_err().code(),
            "E_TX_UNKNOWN_OP"
        );
        assert_eq!(
            SignedTransaction::decode(&vec![1u8; MAX_TX_BYTES + 1])
                .unwrap_err()
                .code(),
            "E_TX_TOO_LARGE"
        );
        let mut z = b.to_vec();
        z[HEADER_LEN + 33..HEADER_LEN + 41].fill(0);
        assert_eq!(
            SignedTransaction::decode(&z).unwrap_err().code(),
            "E_TX_FIELD"
        );
    }

    #[test]
    fn multi_transfer_rules() {
        let (sk, sender) = keypair_from_seed([1; 32]);
        let outs: Vec<_> = (0..17u8)
            .map(|i| (keypair_from_seed([i + 10; 32]).1, 1))
            .collect();
        let tx = |outputs: Vec<(Address, u64)>| Transaction {
            chain_id: 1,
            sender,
            nonce: 0,
            fee: 1,
            op: Operation::MultiTransfer { outputs },
        };
        assert!(tx(outs[..16].to_vec()).validate().is_ok());
        assert!(tx(outs.clone()).validate().is_err());
        assert!(tx(vec![]).validate().is_err());
        assert!(tx(vec![(sender, 1)]).validate().is_err());
        let s = tx(outs[..16].to_vec()).sign(&sk);
        assert!(s.size() <= MAX_TX_BYTES);
        assert_eq!(SignedTransaction::decode(s.encoded()).unwrap(), s);
        assert_eq!(s.tx().accounts().len(), 17);
    }

    #[test]
    fn hex_round_trips() {
        let (_, s) = sample();
        assert_eq!(TxHash::from_hex(&s.hash().to_string()), Some(s.hash()));
        let a = s.tx().sender;
        assert_eq!(Address::from_hex(&a.to_hex()), Some(a));
        assert_eq!(Address::from_hex("zz"), None);
        assert_eq!(Address::from_hex(&"é".repeat(32)), None);
    }
}
