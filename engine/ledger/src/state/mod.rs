//! Ledger state: accounts with balances and nonces.
//!
//! This module holds the types every part of the execution path shares: [`Account`] and the
//! read-only [`StateView`] that admission checks nonces and balances against; the
//! [`ShardedState`] store, sharded by address, that executors read and blocks are committed
//! to; and the [`StateRoot`], a Merkle root any replica can recompute ([`root`] defines it
//! byte for byte), maintained incrementally as blocks are applied.

use serde::{Deserialize, Serialize};

use crate::tx::Address;

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Account {
    /// Balance in base units.
    pub balance: u64,
    /// Next nonce the account's next transaction must carry.
    pub nonce: u64,
}

/// Read access to committed state. Implementations must be safe to share between threads.
pub trait StateView: Send + Sync {
    /// The account at `address` (the default, empty account when it does not exist).
    fn account(&self, address: &Address) -> Account;

    /// The accounts at `addresses`, in order. Implementations may overlap the reads (a
    /// lookup is mostly memory latency, and independent lookups can be in flight together);
    /// the default reads one after the other.
    fn accounts(&self, addresses: &[Address]) -> Vec<Account> {
        addresses.iter().map(|a| self.account(a)).collect()
    }
}

/// The genesis allocation: initial balances, applied once before the first block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain identifier that transactions must carry.
    pub chain_id: u32,
    /// Initial balances.
    pub allocations: Vec<(Address, u64)>,
}

pub mod root;
mod store;

/// Address order (ascending bytes, the same order as `Address`'s `Ord`), comparing the first
/// eight bytes as one integer before falling back to the rest: sorting and searching
/// addresses is hot in execution and commit, and a byte-wise `memcmp` call costs several
/// times more.
pub fn address_order(a: &Address, b: &Address) -> std::cmp::Ordering {
    let head = |x: &Address| {
        let mut h = [0u8; 8];
        h.copy_from_slice(&x.0[..8]);
        u64::from_be_bytes(h)
    };
    head(a).cmp(&head(b)).then_with(|| a.0[8..].cmp(&b.0[8..]))
}

pub use root::{StateRoot, compute_root};
pub use store::{DEFAULT_SHARDS, MAX_SHARDS, ShardedState};

/// Why a state could not be built. Each variant has a stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A shard count outside `1..=MAX_SHARDS`.
    #[error("shard count {0} outside 1..={MAX_SHARDS}")]
    ShardCount(usize),
    /// Genesis allocations to one address add up to more than `u64::MAX`.
    #[error("genesis allocations to {0} overflow u64")]
    GenesisOverflow(Address),
}

impl StateError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::ShardCount(_) => "E_STATE_SHARD_COUNT",
            StateError::GenesisOverflow(_) => "E_STATE_GENESIS_OVERFLOW",
        }
    }
}
