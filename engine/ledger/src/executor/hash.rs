//! Hash maps keyed by address, with a per-process random seed.
//!
//! Addresses are public keys that anyone can grind, so an unseeded fast hash would let a
//! sender degrade the executor's maps. Iteration order of these maps never reaches an
//! outcome: everything that leaves an executor is sorted or in block order.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use crate::tx::Address;

/// A map keyed by address.
pub(crate) type AddressMap<V> = HashMap<Address, V, AddressHasherBuilder>;

/// An empty map with room for `capacity` entries.
pub(crate) fn address_map<V>(capacity: usize) -> AddressMap<V> {
    HashMap::with_capacity_and_hasher(capacity, AddressHasherBuilder::new())
}

fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(rand::random)
}

/// Builds [`AddressHasher`]s with the process seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddressHasherBuilder {
    seed: u64,
}

impl AddressHasherBuilder {
    pub(crate) fn new() -> Self {
        Self {
            seed: process_seed(),
        }
    }
}

impl BuildHasher for AddressHasherBuilder {
    type Hasher = AddressHasher;
    fn build_hasher(&self) -> AddressHasher {
        AddressHasher {
            seed: self.seed,
            state: 0,
        }
    }
}

/// One-shot seeded xxh3 over the bytes written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddressHasher {
    seed: u64,
    state: u64,
}

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.seed ^ self.state);
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix of the 32-byte array: constant, mixed in cheaply.
        self.state ^= (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}
