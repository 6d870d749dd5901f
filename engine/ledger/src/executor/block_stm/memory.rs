//! Multi-version memory: for each account, the committed value (read once, on first use)
//! and the value each transaction's last incarnation wrote, or an estimate mark where an
//! aborted incarnation wrote.
//!
//! Layout, chosen for low contention and no allocation on the hot path:
//!
//! - the accounts are spread over a power-of-two number of shards (about one per 32
//!   transactions, at least [`MIN_SHARDS`], at most [`MAX_SHARDS`]: each is two
//!   allocations made before the workers start), each a cache-padded lock over a small hash index
//!   and a vector of keys; there is no global lock, and two workers meet on a shard lock
//!   only when they touch accounts of the same shard at the same moment (for a hot account
//!   that is the account itself, as with a per-key lock);
//! - a key's versions are a vector sorted by transaction index, the first stored inline (at
//!   low contention an account has one writer in the block, and allocating its vector from
//!   the workers' threads was a measurable share of a transfer): the read of transaction `i`
//!   is a binary search for the highest index below `i`, and writes arrive mostly in block
//!   order, so an insert is an append or a short move;
//! - a read returns the key's [`Loc`] (shard and slot), which the caller keeps in its read
//!   set: writes (a transaction writes only accounts it read), validation, estimates and
//!   removals go straight to the slot without hashing the address again;
//! - the committed value is cached in the key when it is created, so each account is read
//!   from the state once per block, as the sequential executor does, and the write set's
//!   values before the block come from the cache.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::super::hash::{AddressMap, address_map};
use super::super::semantics::Touched;
use crate::state::{Account, StateView};
use crate::tx::Address;

/// Most shards.
const MAX_SHARDS: usize = 1 << 12;
/// Fewest shards.
const MIN_SHARDS: usize = 16;

/// Where a read found its value: `idx == STORAGE` is the committed state, otherwise
/// transaction `idx`, incarnation `incarnation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Origin {
    idx: u32,
    incarnation: u32,
}

impl Origin {
    const STORAGE: Origin = Origin {
        idx: u32::MAX,
        incarnation: 0,
    };
}

/// A key's place in the memory: its shard and its slot there. Stable for the block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Loc {
    shard: u32,
    slot: u32,
}

/// The result of a read.
pub(super) enum Read {
    /// A value, and where it came from.
    Value(Origin, Account),
    /// Transaction `.0`, below the reader, wrote the account in an aborted incarnation and
    /// is being re-executed: the reader waits for it.
    Estimate(usize),
}

#[derive(Clone, Copy)]
struct Entry {
    idx: u32,
    incarnation: u32,
    estimate: bool,
    value: Account,
}

struct Key {
    address: Address,
    base: Account,
    versions: SmallVec<[Entry; 1]>,
}

impl Key {
    fn lookup(&self, idx: u32) -> Read {
        let below = self.versions.partition_point(|e| e.idx < idx);
        match below.checked_sub(1).map(|at| self.versions[at]) {
            None => Read::Value(Origin::STORAGE, self.base),
            Some(e) if e.estimate => Read::Estimate(e.idx as usize),
            Some(e) => Read::Value(
                Origin {
                    idx: e.idx,
                    incarnation: e.incarnation,
                },
                e.value,
            ),
        }
    }

    fn find(&mut self, idx: u32) -> Result<usize, usize> {
        self.versions.binary_search_by_key(&idx, |e| e.idx)
    }
}

struct Shard {
    index: AddressMap<u32>,
    keys: Vec<Key>,
}

pub(super) struct MvMemory {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    mask: usize,
}

impl MvMemory {
    /// Memory for a block of `size` transactions.
    pub(super) fn new(size: usize) -> Self {
        let count = (size / 32)
            .next_power_of_two()
            .clamp(MIN_SHARDS, MAX_SHARDS);
        let per_shard = size * 2 / count + 4;
        Self {
            shards: (0..count)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard {
                        index: address_map(per_shard),
                        keys: Vec::with_capacity(per_shard),
                    }))
                })
                .collect(),
            mask: count - 1,
        }
    }

    fn shard_of(&self, address: &Address) -> usize {
        // Bytes 8-15, mixed: well spread for keys (which are hashes of secrets) and
        // independent of the bytes the state's own buckets use; a sender grinding keys into
        // one shard only slows its own block down.
        let mut h = [0u8; 8];
        h.copy_from_slice(&address.0[8..16]);
        let x = u64::from_le_bytes(h).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 40) as usize & self.mask
    }

    /// The key's slot in `shard`, created (with the committed value read from `base`) if
    /// absent.
    fn slot(shard: &mut Shard, base: &dyn StateView, address: &Address) -> u32 {
        if let Some(&slot) = shard.index.get(address) {
            return slot;
        }
        let slot = shard.keys.len() as u32;
        shard.keys.push(Key {
            address: *address,
            base: base.account(address),
            versions: SmallVec::new(),
        });
        shard.index.insert(*address, slot);
        slot
    }

    /// What transaction `idx` reads at `address`, and the key's location.
    pub(super) fn read(&self, base: &dyn StateView, address: &Address, idx: usize) -> (Loc, Read) {
        let s = self.shard_of(address);
        let mut shard = self.shards[s].lock();
        let slot = Self::slot(&mut shard, base, address);
        let read = shard.keys[slot as usize].lookup(idx as u32);
        (
            Loc {
                shard: s as u32,
                slot,
            },
            read,
        )
    }

    /// The location of `address` (created if absent), for a write of an account the
    /// transaction did not read (the execution rules never do that; kept for safety).
    pub(super) fn locate(&self, base: &dyn StateView, address: &Address) -> Loc {
        let s = self.shard_of(address);
        let mut shard = self.shards[s].lock();
        Loc {
            shard: s as u32,
            slot: Self::slot(&mut shard, base, address),
        }
    }

    /// Stores the value incarnation `incarnation` of transaction `idx` wrote at `loc`.
    pub(super) fn write(&self, loc: Loc, idx: usize, incarnation: u32, value: Account) {
        let entry = Entry {
            idx: idx as u32,
            incarnation,
            estimate: false,
            value,
        };
        let mut shard = self.shards[loc.shard as usize].lock();
        let key = &mut shard.keys[loc.slot as usize];
        match key.find(idx as u32) {
            Ok(at) => key.versions[at] = entry,
            Err(at) => key.versions.insert(at, entry),
        }
    }

    /// Removes transaction `idx`'s write at `loc` (its last incarnation did not write it).
    pub(super) fn remove(&self, loc: Loc, idx: usize) {
        let mut shard = self.shards[loc.shard as usize].lock();
        let key = &mut shard.keys[loc.slot as usize];
        if let Ok(at) = key.find(idx as u32) {
            key.versions.remove(at);
        }
    }

    /// Marks transaction `idx`'s write at `loc` as an estimate (its incarnation aborted).
    pub(super) fn mark_estimate(&self, loc: Loc, idx: usize) {
        let mut shard = self.shards[loc.shard as usize].lock();
        let key = &mut shard.keys[loc.slot as usize];
        if let Ok(at) = key.find(idx as u32) {
            key.versions[at].estimate = true;
        }
    }

    /// Whether transaction `idx` would read from `origin` at `loc` now.
    pub(super) fn validate(&self, loc: Loc, idx: usize, origin: Origin) -> bool {
        let shard = self.shards[loc.shard as usize].lock();
        matches!(shard.keys[loc.slot as usize].lookup(idx as u32), Read::Value(now, _) if now == origin)
    }

    /// The account at `loc` before the block and as transaction `idx` wrote it: `None` if
    /// `idx` has no write there or only an estimate.
    pub(super) fn written(&self, loc: Loc, idx: usize) -> Option<Touched> {
        let mut shard = self.shards[loc.shard as usize].lock();
        let key = &mut shard.keys[loc.slot as usize];
        let at = key.find(idx as u32).ok()?;
        let e = key.versions[at];
        (!e.estimate).then_some(Touched {
            address: key.address,
            before: key.base,
            after: e.value,
        })
    }

    /// The accounts of shards `first, first + step, ...` that some transaction wrote: their
    /// committed value and the last write. `None` if an estimate is left (a bug).
    pub(super) fn touched(&self, first: usize, step: usize) -> Option<Vec<Touched>> {
        let mut out = Vec::new();
        for shard in self.shards.iter().skip(first).step_by(step.max(1)) {
            let shard = shard.lock();
            out.reserve(shard.keys.len());
            for key in &shard.keys {
                if let Some(last) = key.versions.last() {
                    if last.estimate {
                        return None;
                    }
                    out.push(Touched {
                        address: key.address,
                        before: key.base,
                        after: last.value,
                    });
                }
            }
        }
        Some(out)
    }
}
