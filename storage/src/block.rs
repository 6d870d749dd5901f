//! Stored blocks: the header, the transactions in their canonical encoding and the receipts,
//! with a versioned binary layout and a hash any replica recomputes.
//!
//! Layout of a stored block, version 1 (all integers little-endian):
//!
//! ```text
//! u8   format (1)
//! u64  height
//! [32] parent hash
//! [32] state root after the block
//! u64  timestamp (Unix milliseconds, the proposer's clock)
//! [32] transactions root: BLAKE3 over the transaction hashes in block order
//! u32  transaction count N
//! N x (u32 length, bytes): the signed transactions, canonical v1 encoding
//! N x (u8 status, u64 fee charged): the receipts, in block order
//! ```
//!
//! The block hash is BLAKE3 over the domain `AURIGRAPH-BLOCK-V1` and the header fields
//! (format through transactions root). Receipts are outputs of execution, so they are stored
//! but not hashed: a replica that re-executes the block recomputes them and the state root.

use aurigraph_ledger::executor::{Receipt, TxStatus};
use aurigraph_ledger::state::root::StateRoot;
use aurigraph_ledger::tx::{SignedTransaction, TxHash};

/// Format byte of version 1.
pub const BLOCK_FORMAT: u8 = 1;
const DOMAIN: &[u8] = b"AURIGRAPH-BLOCK-V1";

/// A block's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Height (the genesis is 0, the first block 1).
    pub height: u64,
    /// Hash of the previous block (the genesis hash for block 1).
    pub parent: [u8; 32],
    /// State root after the block.
    pub state_root: StateRoot,
    /// Proposer's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// BLAKE3 over the transaction hashes in block order.
    pub tx_root: [u8; 32],
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        h.update(&[BLOCK_FORMAT]);
        h.update(&self.height.to_le_bytes());
        h.update(&self.parent);
        h.update(&self.state_root.0);
        h.update(&self.timestamp_ms.to_le_bytes());
        h.update(&self.tx_root);
        *h.finalize().as_bytes()
    }
}

/// The transactions root of hashes in block order.
pub fn tx_root(hashes: impl IntoIterator<Item = TxHash>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for t in hashes {
        h.update(&t.0);
    }
    *h.finalize().as_bytes()
}

/// A block as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// The header.
    pub header: BlockHeader,
    /// Signed transactions in block order.
    pub txs: Vec<SignedTransaction>,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
}

/// Why stored bytes are not a block (a corrupt database).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored block is corrupt: {0}")]
pub struct CorruptBlock(pub String);

impl StoredBlock {
    /// The block hash.
    pub fn hash(&self) -> [u8; 32] {
        self.header.hash()
    }

    /// The version 1 encoding.
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self.txs.iter().map(|t| t.size() + 4).sum();
        let mut out = Vec::with_capacity(1 + 8 + 32 * 3 + 8 + 4 + body + self.receipts.len() * 9);
        out.push(BLOCK_FORMAT);
        out.extend_from_slice(&self.header.height.to_le_bytes());
        out.extend_from_slice(&self.header.parent);
        out.extend_from_slice(&self.header.state_root.0);
        out.extend_from_slice(&self.header.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.header.tx_root);
        out.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        for t in &self.txs {
            out.extend_from_slice(&(t.size() as u32).to_le_bytes());
            out.extend_from_slice(t.encoded());
        }
        for r in &self.receipts {
            out.push(r.status as u8);
            out.extend_from_slice(&r.fee_charged.to_le_bytes());
        }
        out
    }

    /// Decodes a version 1 encoding; every transaction is decoded strictly again.
    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptBlock> {
        let mut r = Reader { bytes, at: 0 };
        let format = r.u8()?;
        if format != BLOCK_FORMAT {
            return Err(CorruptBlock(format!("unknown block format {format}")));
        }
        let header = BlockHeader {
            height: r.u64()?,
            parent: r.array()?,
            state_root: StateRoot(r.array()?),
            timestamp_ms: r.u64()?,
            tx_root: r.array()?,
        };
        let n = r.u32()? as usize;
        if n > bytes.len() {
            return Err(CorruptBlock(format!(
                "{n} transactions in {} bytes",
                bytes.len()
            )));
        }
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u32()? as usize;
            let raw = r.take(len)?;
            let tx = SignedTransaction::decode(raw)
                .map_err(|e| CorruptBlock(format!("transaction: [{}] {e}", e.code())))?;
            txs.push(tx);
        }
        let mut receipts = Vec::with_capacity(n);
        for t in &txs {
            let status = status_from_u8(r.u8()?)?;
            receipts.push(Receipt {
                tx_hash: t.hash(),
                status,
                fee_charged: r.u64()?,
            });
        }
        if r.at != bytes.len() {
            return Err(CorruptBlock("trailing bytes".into()));
        }
        Ok(Self {
            header,
            txs,
            receipts,
        })
    }
}

/// The status of a stored numeric code.
pub fn status_from_u8(v: u8) -> Result<TxStatus, CorruptBlock> {
    Ok(match v {
        0 => TxStatus::Success,
        1 => TxStatus::InsufficientFunds,
        2 => TxStatus::BalanceOverflow,
        16 => TxStatus::WrongChain,
        17 => TxStatus::Invalid,
        18 => TxStatus::ReservedSender,
        19 => TxStatus::BadNonce,
        20 => TxStatus::NonceExhausted,
        21 => TxStatus::CannotPayFee,
        other => return Err(CorruptBlock(format!("unknown receipt status {other}"))),
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptBlock> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| CorruptBlock("truncated".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptBlock> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CorruptBlock> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CorruptBlock> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CorruptBlock> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurigraph_ledger::tx::{Address, Operation, Transaction, keypair_from_seed};

    fn tx(nonce: u64) -> SignedTransaction {
        let (key, sender) = keypair_from_seed([3; 32]);
        Transaction {
            chain_id: 1,
            sender,
            nonce,
            fee: 10,
            op: Operation::Transfer {
                to: Address([9; 32]),
                amount: 5,
            },
        }
        .sign(&key)
    }

    #[test]
    fn a_block_round_trips_and_its_hash_covers_the_header() {
        let txs = vec![tx(0), tx(1)];
        let receipts = txs
            .iter()
            .map(|t| Receipt {
                tx_hash: t.hash(),
                status: TxStatus::Success,
                fee_charged: 10,
            })
            .collect();
        let b = StoredBlock {
            header: BlockHeader {
                height: 7,
                parent: [1; 32],
                state_root: StateRoot([2; 32]),
                timestamp_ms: 1_700_000_000_000,
                tx_root: tx_root(txs.iter().map(|t| t.hash())),
            },
            txs,
            receipts,
        };
        let bytes = b.encode();
        assert_eq!(StoredBlock::decode(&bytes), Ok(b.clone()));
        let mut other = b.header;
        other.timestamp_ms += 1;
        assert_ne!(other.hash(), b.hash());
        // Truncations and trailing bytes are refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(StoredBlock::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StoredBlock::decode(&longer).is_err());
    }
}
