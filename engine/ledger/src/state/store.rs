//! [`ShardedState`]: the in-memory account store, sharded by address, with its root.

use rayon::prelude::*;

use super::root::{ROOT_BUCKETS, RootTree, StateRoot, bucket_digest, bucket_of};
use super::{Account, Genesis, StateError, StateView};
use crate::tx::Address;

/// Default number of storage shards.
pub const DEFAULT_SHARDS: usize = 256;
/// Largest number of storage shards (one per root bucket).
pub const MAX_SHARDS: usize = ROOT_BUCKETS;

/// Write sets at least this large are applied shard by shard on rayon's pool.
const PARALLEL_WRITES: usize = 2048;

type Bucket = Vec<(Address, Account)>;
/// New bucket digests: (bucket, digest).
type BucketUpdates = Vec<(usize, [u8; 32])>;

/// One shard: a contiguous range of root buckets, each a vector sorted by address.
#[derive(Clone, Debug, Default)]
struct Shard {
    first_bucket: usize,
    buckets: Vec<Bucket>,
}

/// The account store.
///
/// Storage is sharded by address: shard `s` of `S` owns the root buckets `b` (first two
/// address bytes, see [`crate::state::root`]) with `b * S / 65,536 == s`, a contiguous
/// range, so a shard owns whole buckets and the root never depends on the shard count.
/// Inside a shard each bucket is a vector sorted by address: a lookup is an index and a
/// binary search over the bucket's few accounts, and a bucket's digest reads one slice.
/// Default accounts are never stored.
///
/// Reads take `&self` and never lock: executors read from many threads at once, and a
/// block's writes are applied afterwards through `&mut self` ([`ShardedState::apply`]),
/// shard by shard in parallel when the write set is large.
#[derive(Clone, Debug)]
pub struct ShardedState {
    chain_id: u32,
    shards: Vec<Shard>,
    tree: RootTree,
    accounts: usize,
}

impl ShardedState {
    /// An empty state for `chain_id` with `shard_count` shards (1 to [`MAX_SHARDS`]).
    pub fn new(chain_id: u32, shard_count: usize) -> Result<Self, StateError> {
        if shard_count == 0 || shard_count > MAX_SHARDS {
            return Err(StateError::ShardCount(shard_count));
        }
        let first = |s: usize| (s * ROOT_BUCKETS).div_ceil(shard_count);
        let shards = (0..shard_count)
            .map(|s| Shard {
                first_bucket: first(s),
                buckets: vec![Vec::new(); first(s + 1) - first(s)],
            })
            .collect();
        Ok(Self {
            chain_id,
            shards,
            tree: RootTree::new(),
            accounts: 0,
        })
    }

    /// The state after the genesis allocations (amounts to the same address add up;
    /// zero amounts create nothing). Fails if an address's total overflows `u64`.
    pub fn from_genesis(genesis: &Genesis, shard_count: usize) -> Result<Self, StateError> {
        let mut state = Self::new(genesis.chain_id, shard_count)?;
        let mut totals: std::collections::BTreeMap<Address, u64> = Default::default();
        for (address, amount) in &genesis.allocations {
            let t = totals.entry(*address).or_insert(0);
            *t = t
                .checked_add(*amount)
                .ok_or(StateError::GenesisOverflow(*address))?;
        }
        let writes: Vec<(Address, Account)> = totals
            .into_iter()
            .map(|(a, balance)| (a, Account { balance, nonce: 0 }))
            .collect();
        state.apply(&writes);
        Ok(state)
    }

    /// The chain identifier transactions must carry.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
    }

    /// Number of storage shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Number of (non-default) accounts.
    pub fn len(&self) -> usize {
        self.accounts
    }

    /// Whether no account exists.
    pub fn is_empty(&self) -> bool {
        self.accounts == 0
    }

    /// The current state root (see [`crate::state::root`]).
    pub fn root(&self) -> StateRoot {
        self.tree.root()
    }

    /// All accounts in address order.
    pub fn iter(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.shards
            .iter()
            .flat_map(|s| s.buckets.iter().flatten().map(|(a, acc)| (a, acc)))
    }

    /// Re-computes the root from every account, ignoring the incremental tree (audits and
    /// tests; costs a hash over the whole state).
    pub fn recompute_root(&self) -> StateRoot {
        super::root::compute_root(self.iter())
    }

    fn shard_of(&self, address: &Address) -> usize {
        bucket_of(address) * self.shards.len() / ROOT_BUCKETS
    }

    /// Writes accounts (in order: a later entry for the same address wins; a default account
    /// deletes) and updates the root incrementally: only the written buckets and their paths
    /// to the top are re-hashed. Returns the new root.
    pub fn apply(&mut self, writes: &[(Address, Account)]) -> StateRoot {
        let mut updates: BucketUpdates;
        let mut delta: isize = 0;
        if writes.len() >= PARALLEL_WRITES && self.shards.len() > 1 {
            let mut per_shard: Vec<Vec<&(Address, Account)>> = vec![Vec::new(); self.shards.len()];
            for w in writes {
                per_shard[self.shard_of(&w.0)].push(w);
            }
            let parts: Vec<(isize, BucketUpdates)> = self
                .shards
                .par_iter_mut()
                .zip(per_shard)
                .map(|(shard, ws)| shard.apply(ws))
                .collect();
            updates = Vec::with_capacity(writes.len());
            for (d, u) in parts {
                delta += d;
                updates.extend(u);
            }
        } else {
            let mut per_shard: Vec<(usize, Vec<&(Address, Account)>)> = Vec::new();
            for w in writes {
                let s = self.shard_of(&w.0);
                match per_shard.iter_mut().find(|(i, _)| *i == s) {
                    Some((_, v)) => v.push(w),
                    None => per_shard.push((s, vec![w])),
                }
            }
            updates = Vec::with_capacity(writes.len());
            for (s, ws) in per_shard {
                let (d, u) = self.shards[s].apply(ws);
                delta += d;
                updates.extend(u);
            }
        }
        self.accounts = self.accounts.saturating_add_signed(delta);
        self.tree.set_buckets(&mut updates);
        self.tree.root()
    }
}

impl Shard {
    /// Applies this shard's writes in order; returns the change in the account count and
    /// the new digests of the buckets written.
    fn apply(&mut self, writes: Vec<&(Address, Account)>) -> (isize, BucketUpdates) {
        let mut delta = 0isize;
        let mut dirty: Vec<usize> = Vec::with_capacity(writes.len());
        for (address, account) in writes {
            let local = bucket_of(address) - self.first_bucket;
            let Some(bucket) = self.buckets.get_mut(local) else {
                continue; // unreachable: the caller routed the address to this shard
            };
            match bucket.binary_search_by(|e| super::address_order(&e.0, address)) {
                Ok(i) if *account == Account::default() => {
                    bucket.remove(i);
                    delta -= 1;
                }
                Ok(i) => bucket[i].1 = *account,
                Err(_) if *account == Account::default() => {}
                Err(i) => {
                    bucket.insert(i, (*address, *account));
                    delta += 1;
                }
            }
            dirty.push(local);
        }
        dirty.sort_unstable();
        dirty.dedup();
        let updates = dirty
            .into_iter()
            .map(|local| {
                let digest = bucket_digest(self.buckets[local].iter().map(|(a, acc)| (a, acc)));
                (self.first_bucket + local, digest)
            })
            .collect();
        (delta, updates)
    }

    fn get(&self, address: &Address) -> Option<Account> {
        search(self.bucket(address), address)
    }

    /// The bucket `address` falls in (empty if it is not this shard's).
    fn bucket(&self, address: &Address) -> &[(Address, Account)] {
        bucket_of(address)
            .checked_sub(self.first_bucket)
            .and_then(|local| self.buckets.get(local))
            .map_or(&[], Vec::as_slice)
    }
}

fn search(bucket: &[(Address, Account)], address: &Address) -> Option<Account> {
    let i = bucket
        .binary_search_by(|e| super::address_order(&e.0, address))
        .ok()?;
    Some(bucket[i].1)
}

/// Lookups [`ShardedState::accounts`] keeps in flight together.
const READ_BATCH: usize = 16;

impl StateView for ShardedState {
    fn account(&self, address: &Address) -> Account {
        self.shards[self.shard_of(address)]
            .get(address)
            .unwrap_or_default()
    }

    /// Reads in batches of 16, in three passes per batch so that each pass's
    /// cache misses are independent of each other and overlap (a lone lookup waits for two
    /// misses in a row: the bucket's header, then its entries, and the binary search's
    /// branches stop the processor from running ahead to the next lookup): the bucket
    /// headers, then the first entry of each bucket, then the searches, now from cache.
    fn accounts(&self, addresses: &[Address]) -> Vec<Account> {
        let mut out = Vec::with_capacity(addresses.len());
        for batch in addresses.chunks(READ_BATCH) {
            let mut buckets: [&[(Address, Account)]; READ_BATCH] = [&[]; READ_BATCH];
            for (b, a) in buckets.iter_mut().zip(batch) {
                *b = self.shards[self.shard_of(a)].bucket(a);
            }
            let mut touch = 0u64;
            for b in &buckets[..batch.len()] {
                if let Some((_, account)) = b.first() {
                    touch ^= account.balance;
                }
            }
            std::hint::black_box(touch);
            for (b, a) in buckets.iter().zip(batch) {
                out.push(search(b, a).unwrap_or_default());
            }
        }
        out
    }
}
