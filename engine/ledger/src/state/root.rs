//! The state root: a fixed-shape binary Merkle tree over 65,536 hash buckets.
//!
//! ## Definition (version 1)
//!
//! Everything below is BLAKE3 (32-byte output); integers are little-endian unless said.
//!
//! 1. **Accounts in the state.** An account equal to [`Account::default()`] (balance 0,
//!    nonce 0) is not part of the state: it is the same as an account that never existed.
//! 2. **Bucket.** An address's bucket is its first two bytes read big-endian,
//!    `bucket(a) = a[0] * 256 + a[1]`, in `0..65,536`. The bucket layout is fixed: it does
//!    not depend on how a node shards its storage, so the root is the same for every shard
//!    count and a replica needs to know nothing but the accounts.
//! 3. **Keys.** `LEAF_KEY = BLAKE3("aurigraph/state-root/v1/leaf")` and
//!    `NODE_KEY = BLAKE3("aurigraph/state-root/v1/node")` (the ASCII strings, no
//!    terminator). `keyed(K, m)` is BLAKE3's keyed mode with key `K`. Distinct keys keep a
//!    leaf from ever being read as a node, and an inner node's 64-byte input is a single
//!    BLAKE3 block.
//! 4. **Leaf.** The digest of a bucket is `keyed(LEAF_KEY, entry*)`, where the entries are
//!    the bucket's accounts sorted by address (ascending bytes) and
//!    `entry := address:[u8; 32] | balance:u64 | nonce:u64`. An empty bucket's digest is
//!    `keyed(LEAF_KEY, "")`.
//! 5. **Tree.** A complete binary tree of depth 16 whose leaves, left to right, are the
//!    digests of buckets `0, 1, …, 65,535`. An inner node is `keyed(NODE_KEY, left | right)`.
//! 6. **Root.** The state root is the tree's top node.
//!
//! Any change to this definition must change the key strings' version (`v1`).
//! `engine/ledger/tests/vectors.rs` pins known roots (the empty state, a two-account genesis,
//! the state after one transfer) and recomputes them from this text with BLAKE3 alone.
//!
//! ## Incremental maintenance
//!
//! The state keeps the 131,071 nodes (4 MiB). Applying a block re-hashes only the buckets
//! the block wrote to and the inner nodes on their paths to the top: a block that writes `w`
//! accounts costs at most `w` bucket digests (each over the bucket's few accounts: a state of
//! `N` accounts holds about `N / 65,536` per bucket) and `16 w` node hashes, shared paths
//! counted once. Nothing else is re-hashed. [`compute_root`] computes the same root from
//! scratch for any set of accounts: replicas, tests and audits use it to check the
//! incremental result.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Account;
use crate::tx::Address;

/// Levels with at least this many dirty nodes are hashed on rayon's pool.
const PARALLEL_NODES: usize = 2048;

/// Depth of the root tree: `2^ROOT_DEPTH` buckets.
pub const ROOT_DEPTH: u32 = 16;
/// Number of hash buckets (leaves of the root tree).
pub const ROOT_BUCKETS: usize = 1 << ROOT_DEPTH;

fn leaf_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| *blake3::hash(b"aurigraph/state-root/v1/leaf").as_bytes())
}

fn node_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| *blake3::hash(b"aurigraph/state-root/v1/node").as_bytes())
}

/// A state root (see the module docs for its exact definition).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateRoot(pub [u8; 32]);

impl fmt::Debug for StateRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateRoot({self})")
    }
}

impl fmt::Display for StateRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl StateRoot {
    /// The root of the empty state.
    pub fn empty() -> Self {
        StateRoot(empty_digests()[0])
    }
}

/// The bucket of an address: its first two bytes, big-endian.
pub fn bucket_of(address: &Address) -> usize {
    usize::from(u16::from_be_bytes([address.0[0], address.0[1]]))
}

/// The digest of one bucket from its accounts, which must be sorted by address and belong
/// to the bucket. Default (empty) accounts are skipped.
pub fn bucket_digest<'a>(
    entries: impl IntoIterator<Item = (&'a Address, &'a Account)>,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(leaf_key());
    let mut buf = [0u8; 48];
    for (address, account) in entries {
        if *account == Account::default() {
            continue;
        }
        buf[..32].copy_from_slice(&address.0);
        buf[32..40].copy_from_slice(&account.balance.to_le_bytes());
        buf[40..48].copy_from_slice(&account.nonce.to_le_bytes());
        h.update(&buf);
    }
    *h.finalize().as_bytes()
}

fn node_digest(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    *blake3::keyed_hash(node_key(), &buf).as_bytes()
}

/// Digests of empty subtrees by depth: index 0 is the root of an empty tree, index
/// `ROOT_DEPTH` an empty bucket.
fn empty_digests() -> &'static [[u8; 32]; ROOT_DEPTH as usize + 1] {
    static EMPTY: std::sync::OnceLock<[[u8; 32]; ROOT_DEPTH as usize + 1]> =
        std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut e = [[0u8; 32]; ROOT_DEPTH as usize + 1];
        e[ROOT_DEPTH as usize] = bucket_digest(std::iter::empty());
        for d in (0..ROOT_DEPTH as usize).rev() {
            e[d] = node_digest(&e[d + 1], &e[d + 1]);
        }
        e
    })
}

/// The root of any set of accounts, computed from scratch (no order or uniqueness needed
/// in the input; a later entry for the same address wins).
pub fn compute_root<'a>(
    accounts: impl IntoIterator<Item = (&'a Address, &'a Account)>,
) -> StateRoot {
    let sorted: std::collections::BTreeMap<Address, Account> =
        accounts.into_iter().map(|(a, acc)| (*a, *acc)).collect();
    let mut tree = RootTree::new();
    let mut updates = Vec::new();
    let mut entries: Vec<(&Address, &Account)> = Vec::new();
    let mut current = None;
    for (a, acc) in &sorted {
        let b = bucket_of(a);
        if current != Some(b) {
            if let Some(cb) = current {
                updates.push((cb, bucket_digest(entries.drain(..))));
            }
            current = Some(b);
        }
        entries.push((a, acc));
    }
    if let Some(cb) = current {
        updates.push((cb, bucket_digest(entries.drain(..))));
    }
    tree.set_buckets(&mut updates);
    tree.root()
}

/// The incrementally maintained root tree (heap layout: node 1 is the top, node `k` has
/// children `2k` and `2k + 1`, bucket `b` is node `ROOT_BUCKETS + b`).
#[derive(Clone)]
pub(crate) struct RootTree {
    nodes: Vec<[u8; 32]>,
}

impl fmt::Debug for RootTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootTree")
            .field("root", &self.root())
            .finish()
    }
}

impl RootTree {
    /// The tree of the empty state.
    pub(crate) fn new() -> Self {
        let e = empty_digests();
        let mut nodes = vec![[0u8; 32]; 2 * ROOT_BUCKETS];
        for (depth, digest) in e.iter().enumerate() {
            let start = 1usize << depth;
            nodes[start..2 * start].fill(*digest);
        }
        Self { nodes }
    }

    /// The current root.
    pub(crate) fn root(&self) -> StateRoot {
        StateRoot(self.nodes[1])
    }

    /// Replaces the digests of some buckets and re-hashes their paths to the top. `updates`
    /// is sorted and deduplicated in place (a later update of a bucket wins).
    pub(crate) fn set_buckets(&mut self, updates: &mut Vec<(usize, [u8; 32])>) {
        let mut dirty: Vec<usize> = Vec::with_capacity(updates.len());
        for (bucket, digest) in updates.iter() {
            let b = bucket % ROOT_BUCKETS;
            self.nodes[ROOT_BUCKETS + b] = *digest;
            dirty.push(ROOT_BUCKETS + b);
        }
        dirty.sort_unstable();
        dirty.dedup();
        while dirty.first().is_some_and(|&k| k > 1) {
            for k in dirty.iter_mut() {
                *k /= 2;
            }
            dirty.dedup();
            if dirty.len() >= PARALLEL_NODES {
                use rayon::prelude::*;
                let nodes = &self.nodes;
                let digests: Vec<[u8; 32]> = dirty
                    .par_iter()
                    .map(|&k| node_digest(&nodes[2 * k], &nodes[2 * k + 1]))
                    .collect();
                for (&k, d) in dirty.iter().zip(digests) {
                    self.nodes[k] = d;
                }
            } else {
                for &k in &dirty {
                    self.nodes[k] = node_digest(&self.nodes[2 * k], &self.nodes[2 * k + 1]);
                }
            }
        }
        updates.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_matches_empty_root() {
        assert_eq!(RootTree::new().root(), StateRoot::empty());
        assert_eq!(compute_root(std::iter::empty()), StateRoot::empty());
    }

    #[test]
    fn default_accounts_do_not_count() {
        let a = Address([9; 32]);
        let zero = Account::default();
        assert_eq!(compute_root([(&a, &zero)]), StateRoot::empty());
        let one = Account {
            balance: 1,
            nonce: 0,
        };
        assert_ne!(compute_root([(&a, &one)]), StateRoot::empty());
    }
}
