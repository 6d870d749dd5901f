//! Multi-version memory: for each account, the value each transaction incarnation wrote,
//! or an estimate mark where an aborted incarnation wrote.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::super::hash::{AddressMap, address_map};
use crate::state::Account;
use crate::tx::Address;

const STRIPES: usize = 256;

/// Where a read found its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// The committed state (no earlier transaction wrote the account).
    Storage,
    /// Transaction `.0`, incarnation `.1`.
    Written(usize, u32),
}

/// The result of a read.
pub(super) enum Read {
    /// No earlier transaction wrote the account.
    Storage,
    /// An earlier transaction's write.
    Value(Origin, Account),
    /// An earlier transaction that will probably write again is being re-executed.
    Blocked(usize),
}

#[derive(Clone, Copy)]
struct Cell {
    incarnation: u32,
    /// None: an estimate (the incarnation was aborted).
    value: Option<Account>,
}

type Versions = BTreeMap<usize, Cell>;

pub(super) struct MvMemory {
    stripes: Vec<Mutex<AddressMap<Versions>>>,
    written: Vec<Mutex<Vec<Address>>>,
    reads: Vec<Mutex<Vec<(Address, Origin)>>>,
}

fn stripe_of(address: &Address) -> usize {
    // Bytes 2-3: well mixed for keys, and independent of the root bucket (bytes 0-1).
    (usize::from(address.0[2]) << 8 | usize::from(address.0[3])) % STRIPES
}

impl MvMemory {
    pub(super) fn new(size: usize) -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(address_map(size * 2 / STRIPES + 1)))
                .collect(),
            written: (0..size).map(|_| Mutex::new(Vec::new())).collect(),
            reads: (0..size).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    pub(super) fn read(&self, address: &Address, idx: usize) -> Read {
        let stripe = self.stripes[stripe_of(address)].lock();
        let Some(versions) = stripe.get(address) else {
            return Read::Storage;
        };
        match versions.range(..idx).next_back() {
            None => Read::Storage,
            Some((&j, cell)) => match cell.value {
                None => Read::Blocked(j),
                Some(v) => Read::Value(Origin::Written(j, cell.incarnation), v),
            },
        }
    }

    /// Stores an incarnation's reads and writes. True if it wrote an account that its
    /// previous incarnation did not.
    pub(super) fn record(
        &self,
        idx: usize,
        incarnation: u32,
        reads: Vec<(Address, Origin)>,
        writes: &[(Address, Account)],
    ) -> bool {
        for (address, value) in writes {
            self.stripes[stripe_of(address)]
                .lock()
                .entry(*address)
                .or_default()
                .insert(
                    idx,
                    Cell {
                        incarnation,
                        value: Some(*value),
                    },
                );
        }
        let new: Vec<Address> = writes.iter().map(|(a, _)| *a).collect();
        let mut written = self.written[idx].lock();
        for old in written.iter() {
            if !new.contains(old)
                && let Some(versions) = self.stripes[stripe_of(old)].lock().get_mut(old)
            {
                versions.remove(&idx);
            }
        }
        let wrote_new = new.iter().any(|a| !written.contains(a));
        *written = new;
        *self.reads[idx].lock() = reads;
        wrote_new
    }

    /// Marks an aborted incarnation's writes as estimates.
    pub(super) fn convert_writes_to_estimates(&self, idx: usize) {
        for address in self.written[idx].lock().iter() {
            if let Some(cell) = self.stripes[stripe_of(address)]
                .lock()
                .get_mut(address)
                .and_then(|v| v.get_mut(&idx))
            {
                cell.value = None;
            }
        }
    }

    /// Whether every read of the last incarnation of `idx` would read the same now.
    pub(super) fn validate_read_set(&self, idx: usize) -> bool {
        let reads = self.reads[idx].lock();
        reads
            .iter()
            .all(|(address, origin)| match self.read(address, idx) {
                Read::Storage => *origin == Origin::Storage,
                Read::Value(now, _) => now == *origin,
                Read::Blocked(_) => false,
            })
    }

    /// The last value of every written account (None if an estimate is left: a bug).
    pub(super) fn snapshot(self) -> Option<Vec<(Address, Account)>> {
        let mut out = Vec::new();
        for stripe in self.stripes {
            for (address, versions) in stripe.into_inner() {
                if let Some((_, cell)) = versions.iter().next_back() {
                    out.push((address, cell.value?));
                }
            }
        }
        Some(out)
    }
}
