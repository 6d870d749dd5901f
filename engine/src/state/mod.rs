//! Ledger state: accounts with balances and nonces.
//!
//! This module holds the types every part of the execution path shares: [`Account`] and the
//! read-only [`StateView`] that admission checks nonces and balances against. The sharded
//! store, the state root and the executors build on them.

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
}

/// The genesis allocation: initial balances, applied once before the first block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain identifier that transactions must carry.
    pub chain_id: u32,
    /// Initial balances.
    pub allocations: Vec<(Address, u64)>,
}
