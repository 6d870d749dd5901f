//! [`SignatureVerifier`]: batched, parallel Ed25519 verification of transaction signatures.

use std::borrow::Borrow;

use ed25519_consensus::batch::{Item, Verifier};
use ed25519_consensus::{Signature, VerificationKeyBytes};
use rand_core_06::{CryptoRng, OsRng, RngCore};
use rayon::prelude::*;

use crate::tx::SignedTransaction;
use aurigraph_decision::error::{EngineError, Result};

/// Default largest chunk handed to one batch verification. Larger batches cost less per
/// signature (measured: 4,096 transfers admitted on 2 threads in 39.6 ms with chunks of
/// 1,024 against 47.2 ms with 256), and halving a failed batch keeps one bad signature's
/// cost near one and a half batches (`docs/PERFORMANCE.md`, signatures).
pub const DEFAULT_MAX_CHUNK: usize = 1_024;

/// Verifies transaction signatures in parallel, on the global rayon pool or on a pool of
/// its own.
///
/// The batch is split into chunks, one rayon task each. A chunk is checked with one
/// `ed25519-consensus` batch verification (2-3x as fast per signature as single
/// verification at a thousand signatures); when the batch equation fails, the chunk is
/// halved to find the bad signatures (a passing half is accepted whole, a failing one
/// halved again down to 32 signatures, checked one by one; both halves failing means the
/// bad ones are spread out, and each signature is checked on its own). Under ZIP-215
/// single and batch verification accept exactly the same signatures, so the fallback never
/// changes an answer, only its cost.
///
/// Chunk size: `ceil(n / threads)` clamped to `1..=max_chunk` (default
/// [`DEFAULT_MAX_CHUNK`]), so every thread gets work; one bad signature in a chunk costs
/// about one and a half more batch verifications of it and at most 32 single checks.
///
/// The batch equation's random coefficients come from a BLAKE3 output stream keyed with 32
/// bytes from the operating system per chunk (one system call per chunk, not one per
/// signature). If the operating system's generator fails, the chunk is verified one
/// signature at a time instead: slower, never wrong, never a panic.
pub struct SignatureVerifier {
    pool: Option<rayon::ThreadPool>,
    max_chunk: usize,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("threads", &self.threads())
            .field("max_chunk", &self.max_chunk)
            .finish()
    }
}

impl SignatureVerifier {
    /// A verifier on a pool of `threads` threads of its own (`None`: the global rayon pool)
    /// that hands at most `max_chunk` signatures to one batch verification.
    ///
    /// Fails with [`EngineError::InvalidConfig`] when `threads` is `Some(0)`, `max_chunk` is
    /// 0 or the pool cannot be started.
    pub fn new(threads: Option<usize>, max_chunk: usize) -> Result<Self> {
        if max_chunk == 0 {
            return Err(EngineError::InvalidConfig(
                "signature verification: max_chunk must be at least 1".to_string(),
            ));
        }
        let pool = match threads {
            None => None,
            Some(0) => {
                return Err(EngineError::InvalidConfig(
                    "signature verification: threads must be at least 1".to_string(),
                ));
            }
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("sigverify-{i}"))
                    .build()
                    .map_err(|e| {
                        EngineError::InvalidConfig(format!("signature verification pool: {e}"))
                    })?,
            ),
        };
        Ok(Self { pool, max_chunk })
    }

    /// Threads that verify.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// Largest chunk handed to one batch verification.
    pub fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    /// Runs `f` on this verifier's pool.
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Whether each transaction's signature verifies, in input order: chunks in parallel,
    /// batch verification per chunk, single verification inside a chunk that fails.
    pub fn verify_batch<S: Borrow<SignedTransaction> + Sync>(&self, txs: &[S]) -> Vec<bool> {
        let mut out = vec![false; txs.len()];
        if txs.is_empty() {
            return out;
        }
        let chunk = txs
            .len()
            .div_ceil(self.threads().max(1))
            .clamp(1, self.max_chunk);
        self.install(|| {
            out.par_chunks_mut(chunk)
                .zip(txs.par_chunks(chunk))
                .for_each(|(o, t)| verify_chunk(t, o));
        });
        out
    }

    /// Whether each transaction's signature verifies, in input order, each verified on its
    /// own (in parallel). The reference for [`SignatureVerifier::verify_batch`].
    pub fn verify_each<S: Borrow<SignedTransaction> + Sync>(&self, txs: &[S]) -> Vec<bool> {
        self.install(|| {
            txs.par_iter()
                .map(|t| t.borrow().verify().is_ok())
                .collect()
        })
    }
}

fn item(tx: &SignedTransaction) -> Item {
    let vk = VerificationKeyBytes::from(tx.tx().sender.0);
    let sig = Signature::from(*tx.signature());
    Item::from((vk, sig, &tx.tx().signing_message()[..]))
}

fn verify_chunk<S: Borrow<SignedTransaction>>(txs: &[S], out: &mut [bool]) {
    let items: Vec<Item> = txs.iter().map(|t| item(t.borrow())).collect();
    match batch_verifies(&items) {
        Some(true) => out.fill(true),
        Some(false) => bisect(&items, out),
        None => verify_singly(&items, out),
    }
}

/// A failed batch of at most this many signatures is checked one signature at a time.
const BISECT_MIN: usize = 32;

/// Whether `items` pass one batch verification (`None`: not tried, for a single item or a
/// failed operating-system generator).
fn batch_verifies(items: &[Item]) -> Option<bool> {
    if items.len() < 2 {
        return None;
    }
    let rng = BatchRng::from_os()?;
    let mut batch = Verifier::new();
    for it in items {
        batch.queue(it.clone());
    }
    Some(batch.verify(rng).is_ok())
}

/// Finds the bad signatures of `items`, whose batch failed: halves it and batch-verifies
/// the left half; if it passes, the bad signatures are in the right half, which is halved in
/// turn without another batch; if it fails, the right half is batch-verified, and when both
/// fail the bad signatures are spread out and every signature is checked on its own (what
/// halving further would cost more than). One bad signature in a chunk of `n` thus costs
/// about one and a half more batches of `n` and at most [`BISECT_MIN`] single checks,
/// instead of `n` single checks. Every answer is a passing batch's or a single
/// verification's, which ZIP-215 makes the same.
fn bisect(items: &[Item], out: &mut [bool]) {
    if items.len() <= BISECT_MIN {
        return verify_singly(items, out);
    }
    let mid = items.len() / 2;
    let (left, right) = items.split_at(mid);
    let (left_out, right_out) = out.split_at_mut(mid);
    match batch_verifies(left) {
        Some(true) => {
            left_out.fill(true);
            bisect(right, right_out);
        }
        Some(false) => match batch_verifies(right) {
            Some(true) => {
                right_out.fill(true);
                bisect(left, left_out);
            }
            _ => verify_singly(items, out),
        },
        None => verify_singly(items, out),
    }
}

fn verify_singly(items: &[Item], out: &mut [bool]) {
    for (o, it) in out.iter_mut().zip(items) {
        *o = it.clone().verify_single().is_ok();
    }
}

/// A cryptographic generator for the batch equation's coefficients: the BLAKE3 output
/// stream under a key from the operating system.
struct BatchRng(blake3::OutputReader);

impl BatchRng {
    fn from_os() -> Option<Self> {
        let mut key = [0u8; 32];
        OsRng.try_fill_bytes(&mut key).ok()?;
        Some(Self(blake3::Hasher::new_keyed(&key).finalize_xof()))
    }
}

impl RngCore for BatchRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoRng for BatchRng {}
