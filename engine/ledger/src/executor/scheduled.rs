//! [`ScheduledExecutor`]: conflict-aware parallel execution from declared accounts, without
//! speculation.
//!
//! ## How it works
//!
//! 1. **Plan** (on the workers, one per partition of the accounts: a contiguous range of
//!    address prefixes): every distinct account of the block gets a *slot*; every
//!    transaction, for each account it declares ([`Transaction::accounts`]: the sender and
//!    the recipients), gets a *ticket*: its position among the block's transactions that
//!    touch that account. The tickets of an account form a chain in block order: this is the
//!    dependency graph of Solana's scheduler or a prio-graph, kept as per-account queues.
//!    Each worker scans the whole block, plans its partition's accounts, writes only its own
//!    ticket list and reads its accounts' values from the state in batches whose lookups
//!    overlap ([`StateView::accounts`]): the state reads, most of a cheap transfer's cost,
//!    thus run partitioned, in parallel, and several in flight at once.
//! 2. **Run**: each worker executes, in block order, the transactions whose sender is in
//!    its partition (their sender's slot is in its cache since it planned it). It waits
//!    until each of a transaction's slots has served all earlier tickets (slot
//!    `turn == ticket`), executes the transaction against the slots' current values, stores
//!    the new values and advances each turn (release/acquire ordering publishes the values to
//!    the next ticket holder).
//! 3. Every account thus sees its transactions in block order, and a transaction only ever
//!    reads accounts it waited for, so the result is the sequential one. Each worker goes in
//!    block order, and the lowest unfinished transaction has no unfinished predecessor, so
//!    the run always progresses.
//! 4. **Write set** (on the workers): each collects and sorts the changed accounts of its
//!    planning partition (a contiguous range of address prefixes), so the write set is the
//!    partitions' concatenation, with the fee sink's credit put in its place: no serial
//!    collection and no global sort.
//!
//! **Serial blocks.** If one account's chain holds more than half of the block (every
//! transaction pays the same exchange, say), parallel workers would mostly wait on each
//! other: the planned block then runs on the calling thread, in order, which costs about
//! what the sequential executor costs. [`ExecStats::parallel`] says which path ran.
//!
//! [`Transaction::accounts`]: crate::tx::Transaction::accounts

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::Backoff;

use super::receipt::Receipt;
use super::semantics::{MAX_TOUCHED, Touched, block_fees, credit_fees, execute_tx};
use super::workers::Workers;
use super::{
    BlockExecutor, ExecStats, Execution, ExecutorError, ExecutorKind, FEE_SINK, check_block,
};
use crate::state::{Account, StateView, address_order};
use crate::tx::{Address, Operation, SignedTransaction};

/// Blocks smaller than this run on the calling thread (waking workers costs more).
pub const MIN_PARALLEL_TXS: usize = 64;

/// The conflict-aware scheduler (see the module docs).
#[derive(Debug)]
pub struct ScheduledExecutor {
    workers: Workers,
}

impl ScheduledExecutor {
    /// A scheduler running on `threads` threads (1 runs on the caller).
    pub fn new(threads: usize) -> Result<Self, ExecutorError> {
        Ok(Self {
            workers: Workers::new(threads, "exec-sched")?,
        })
    }
}

/// One account of the block in the run: whose turn it is and its current value. One cache
/// line each (the address, the turn, the balance and the nonce fit in 64 bytes; the value
/// before the block is kept apart in [`Part::befores`]): the two workers write slots of
/// both partitions, and slots sharing a line made every write a transfer between the cores.
#[repr(align(64))]
struct Slot {
    address: Address,
    turn: AtomicU32,
    balance: AtomicU64,
    nonce: AtomicU64,
}

impl Slot {
    fn loaded(address: Address, before: Account) -> Self {
        Self {
            address,
            turn: AtomicU32::new(0),
            balance: AtomicU64::new(before.balance),
            nonce: AtomicU64::new(before.nonce),
        }
    }
}

/// An entry of a partition's ticket list that belongs to another partition.
const NO_TICKET: u64 = u64::MAX;

/// One planned account of one transaction: its slot in the partition's slots and its place
/// in the slot's chain, packed in one word.
fn pack(slot: usize, ticket: u32) -> u64 {
    (slot as u64) << 32 | u64::from(ticket)
}

fn unpack(v: u64) -> (usize, u32) {
    ((v >> 32) as usize, v as u32)
}

/// One partition's part of the plan.
struct Part {
    /// The partition's accounts, in order of first appearance in the block.
    slots: Vec<Slot>,
    /// Their values before the block, in the same order.
    befores: Vec<Account>,
    /// A packed ticket per declared account of the block, transaction after transaction
    /// ([`NO_TICKET`] where the account is another partition's): every partition's list
    /// has the same layout, and each is written by its own worker only.
    tickets: Vec<u64>,
    /// The transactions whose sender is this partition's, in block order: the ones its
    /// worker runs.
    own: Vec<u32>,
    /// Longest per-account chain.
    longest: u32,
    /// Tickets that wait for an earlier transaction.
    conflicts: u64,
}

struct Plan {
    /// Partition `p` of `P` holds the accounts `a` with `bucket(a) * P / 65,536 == p`.
    parts: Vec<Part>,
    /// `tickets[offsets[i]..offsets[i + 1]]` are transaction `i`'s, in every partition.
    offsets: Vec<u32>,
    /// Longest per-account chain.
    longest_chain: u32,
    /// Tickets that wait for an earlier transaction.
    conflicts: u64,
}

/// The distinct accounts a transaction declares, in the order of
/// [`Transaction::accounts`](crate::tx::Transaction::accounts), without its allocation.
fn declared(tx: &crate::tx::Transaction, out: &mut [Address; MAX_TOUCHED]) -> usize {
    out[0] = tx.sender;
    let mut n = 1;
    let mut add = |a: &Address| {
        if n < MAX_TOUCHED && !out[..n].contains(a) {
            out[n] = *a;
            n += 1;
        }
    };
    match &tx.op {
        Operation::Transfer { to, .. } => add(to),
        Operation::MultiTransfer { outputs } => outputs.iter().for_each(|(to, _)| add(to)),
    }
    n
}

fn partition_of(address: &Address, partitions: usize) -> usize {
    crate::state::root::bucket_of(address) * partitions / crate::state::root::ROOT_BUCKETS
}

/// Plans the block with `partitions` workers, without any shared write: each scans the
/// whole block and plans the accounts of its partition (so each account's chain is built by
/// one worker, in block order), reading each account from the state when it first meets it.
/// The state reads, most of a cheap transfer's cost, thus run partitioned and in parallel,
/// and the run itself touches only the plan.
fn plan(
    block: &[Arc<SignedTransaction>],
    state: &dyn StateView,
    workers: &Workers,
    partitions: usize,
) -> Plan {
    let plan_partition = |p: usize| {
        let capacity = block.len() * 2 / partitions + 16;
        let mut index = super::hash::address_map::<usize>(capacity);
        let mut part = Part {
            slots: Vec::new(),
            befores: Vec::new(),
            tickets: Vec::with_capacity(block.len() * 2 + MAX_TOUCHED),
            own: Vec::with_capacity(block.len() / partitions + 16),
            longest: 0,
            conflicts: 0,
        };
        let mut counts: Vec<u32> = Vec::with_capacity(capacity);
        let mut addresses: Vec<Address> = Vec::with_capacity(capacity);
        let mut offsets: Vec<u32> = Vec::with_capacity(if p == 0 { block.len() + 1 } else { 0 });
        let mut buf = [FEE_SINK; MAX_TOUCHED];
        for (i, stx) in block.iter().enumerate() {
            if p == 0 {
                offsets.push(part.tickets.len() as u32);
            }
            let n = declared(stx.tx(), &mut buf);
            for (j, address) in buf[..n].iter().enumerate() {
                if partitions > 1 && partition_of(address, partitions) != p {
                    part.tickets.push(NO_TICKET);
                    continue;
                }
                if j == 0 {
                    part.own.push(i as u32);
                }
                let slot = *index.entry(*address).or_insert_with(|| {
                    addresses.push(*address);
                    counts.push(0);
                    addresses.len() - 1
                });
                let ticket = counts[slot];
                counts[slot] += 1;
                if ticket > 0 {
                    part.conflicts += 1;
                }
                part.tickets.push(pack(slot, ticket));
            }
        }
        if p == 0 {
            offsets.push(part.tickets.len() as u32);
        }
        // The accounts' values before the block, read together (see `StateView::accounts`).
        part.befores = state.accounts(&addresses);
        part.slots = addresses
            .iter()
            .zip(&part.befores)
            .map(|(a, before)| Slot::loaded(*a, *before))
            .collect();
        part.longest = counts.iter().copied().max().unwrap_or(0);
        (part, offsets)
    };
    let results = if partitions > 1 {
        workers.broadcast(plan_partition)
    } else {
        vec![plan_partition(0)]
    };
    let mut plan = Plan {
        parts: Vec::with_capacity(results.len()),
        offsets: Vec::new(),
        longest_chain: 0,
        conflicts: 0,
    };
    for (p, (part, offsets)) in results.into_iter().enumerate() {
        if p == 0 {
            plan.offsets = offsets;
        }
        plan.longest_chain = plan.longest_chain.max(part.longest);
        plan.conflicts += part.conflicts;
        plan.parts.push(part);
    }
    plan
}

struct Run<'a> {
    plan: &'a Plan,
    /// A placeholder for unused entries of a transaction's held slots.
    any_slot: &'a Slot,
    block: &'a [Arc<SignedTransaction>],
    chain_id: u32,
    failed: AtomicBool,
}

impl Run<'_> {
    /// Executes the transactions `txs` (block indices, in block order). Returns the
    /// receipts it made.
    ///
    /// Progress: every worker executes its transactions in block order, and a transaction
    /// waits only for earlier ones, so the lowest unfinished transaction (its worker has
    /// finished its earlier ones, and all of its predecessors are finished) can always go
    /// on.
    fn work(
        &self,
        txs: impl Iterator<Item = usize>,
    ) -> Result<Vec<(usize, Receipt)>, ExecutorError> {
        let mut out = Vec::with_capacity(self.block.len() / self.plan.parts.len().max(1) + 16);
        for i in txs {
            let stx = self.block.get(i).ok_or(ExecutorError::Invariant(
                "a planned transaction is not in the block",
            ))?;
            match self.execute(i, stx) {
                Ok(r) => out.push((i, r)),
                Err(e) => {
                    self.failed.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn execute(&self, i: usize, stx: &SignedTransaction) -> Result<Receipt, ExecutorError> {
        let partitions = self.plan.parts.len();
        // The declared accounts again (the plan saw them too): each account's partition,
        // hence which list holds its ticket, comes from its address. Recording it in the plan
        // would take one array written by every planning worker, the false sharing the
        // per-partition lists avoid; re-deriving costs a few copies of the addresses.
        let mut buf = [FEE_SINK; MAX_TOUCHED];
        let n = declared(stx.tx(), &mut buf);
        let from = self.plan.offsets[i] as usize;
        if self.plan.offsets[i + 1] as usize - from != n {
            return Err(ExecutorError::Invariant(
                "a transaction's tickets do not match",
            ));
        }
        let mut held: [(&Slot, u32); MAX_TOUCHED] = [(self.any_slot, 0); MAX_TOUCHED];
        for (j, address) in buf[..n].iter().enumerate() {
            let p = if partitions > 1 {
                partition_of(address, partitions)
            } else {
                0
            };
            let held_slot = self
                .plan
                .parts
                .get(p)
                .and_then(|part| {
                    let (slot, ticket) = unpack(*part.tickets.get(from + j)?);
                    Some((part.slots.get(slot)?, ticket))
                })
                .ok_or(ExecutorError::Invariant("a ticket names no slot"))?;
            held[j] = held_slot;
        }
        let held = &held[..n];
        for &(s, ticket) in held {
            if s.turn.load(Ordering::Acquire) == ticket {
                continue;
            }
            let backoff = Backoff::new();
            while s.turn.load(Ordering::Acquire) != ticket {
                if self.failed.load(Ordering::Relaxed) {
                    return Err(ExecutorError::Aborted);
                }
                backoff.snooze();
            }
        }
        let find = |address: &Address| {
            held.iter()
                .map(|(s, _)| *s)
                .find(|s| s.address == *address)
                .ok_or(ExecutorError::Undeclared(*address))
        };
        let effect = execute_tx(stx.tx(), self.chain_id, |address| {
            let s = find(address)?;
            Ok::<_, ExecutorError>(Account {
                balance: s.balance.load(Ordering::Relaxed),
                nonce: s.nonce.load(Ordering::Relaxed),
            })
        })?;
        for (address, account) in effect.writes() {
            let s = find(address)?;
            s.balance.store(account.balance, Ordering::Relaxed);
            s.nonce.store(account.nonce, Ordering::Relaxed);
        }
        for &(s, ticket) in held {
            s.turn.store(ticket + 1, Ordering::Release);
        }
        Ok(Receipt {
            tx_hash: stx.hash(),
            status: effect.status,
            fee_charged: effect.fee,
        })
    }
}

impl ScheduledExecutor {
    /// The block's write set (sorted by address), fees and fees burned, as
    /// [`finish_block`](super::semantics::finish_block) would compute them from every slot.
    ///
    /// Partitions are contiguous ranges of root buckets, that is of address prefixes, so
    /// the accounts of partition `p` all sort before those of partition `p + 1`: each
    /// worker collects and sorts the changed accounts of its own partition, and the write
    /// set is their concatenation in partition order, with the fee sink (credited once,
    /// after the last transaction) inserted in its place. No global sort, and the only
    /// serial work left is the copy.
    fn write_set(
        &self,
        plan: &Plan,
        state: &dyn StateView,
        receipts: &[Receipt],
    ) -> (Vec<(Address, Account)>, u128, u128) {
        let partitions = plan.parts.len();
        let changed = |p: usize| -> (Vec<(Address, Account)>, Option<Touched>) {
            let Some(part) = plan.parts.get(p) else {
                return (Vec::new(), None);
            };
            let mut out = Vec::with_capacity(part.slots.len());
            let mut sink = None;
            for (s, &before) in part.slots.iter().zip(&part.befores) {
                let after = Account {
                    balance: s.balance.load(Ordering::Relaxed),
                    nonce: s.nonce.load(Ordering::Relaxed),
                };
                if s.address.0[0] == FEE_SINK.0[0] && s.address == FEE_SINK {
                    sink = Some(Touched {
                        address: s.address,
                        before,
                        after,
                    });
                } else if before != after {
                    out.push((s.address, after));
                }
            }
            out.sort_unstable_by(|a, b| address_order(&a.0, &b.0));
            (out, sink)
        };
        let mut parts = if partitions > 1 {
            self.workers.broadcast(changed)
        } else {
            vec![changed(0)]
        };
        let fees = block_fees(receipts);
        let mut fees_burned = 0u128;
        let mut sink = parts.iter_mut().find_map(|(_, sink)| sink.take());
        if fees > 0 {
            sink = Some(credit_fees(state, sink, fees, &mut fees_burned));
        }
        let sink = sink.filter(|t| t.before != t.after);
        let sink_partition = if partitions > 1 {
            partition_of(&FEE_SINK, partitions)
        } else {
            0
        };
        let total = parts.iter().map(|(v, _)| v.len()).sum::<usize>() + 1;
        let mut write_set = Vec::with_capacity(total);
        for (p, (part, _)) in parts.iter().enumerate() {
            match sink {
                Some(t) if p == sink_partition.min(parts.len().saturating_sub(1)) => {
                    let at = part.partition_point(|(a, _)| {
                        address_order(a, &FEE_SINK) == std::cmp::Ordering::Less
                    });
                    write_set.extend_from_slice(&part[..at]);
                    write_set.push((FEE_SINK, t.after));
                    write_set.extend_from_slice(&part[at..]);
                }
                _ => write_set.extend_from_slice(part),
            }
        }
        (write_set, fees, fees_burned)
    }
}

impl BlockExecutor for ScheduledExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Scheduled
    }

    fn threads(&self) -> usize {
        self.workers.threads()
    }

    fn execute(
        &self,
        state: &dyn StateView,
        chain_id: u32,
        block: &[Arc<SignedTransaction>],
    ) -> Result<Execution, ExecutorError> {
        check_block(block)?;
        let threads = if block.len() >= MIN_PARALLEL_TXS {
            self.workers.threads()
        } else {
            1
        };
        let plan = plan(block, state, &self.workers, threads);
        let parallel = threads > 1 && (plan.longest_chain as usize) * 2 <= block.len();
        let placeholder = Slot::loaded(FEE_SINK, Account::default());
        let run = Run {
            plan: &plan,
            any_slot: &placeholder,
            block,
            chain_id,
            failed: AtomicBool::new(false),
        };
        let parts = if parallel {
            // Each worker runs the transactions whose sender it planned: their sender's slot
            // is already in its cache.
            self.workers.broadcast(|w| {
                let own = plan.parts.get(w).map_or(&[][..], |p| &p.own[..]);
                run.work(own.iter().map(|&i| i as usize))
            })
        } else {
            vec![run.work(0..block.len())]
        };
        let mut receipts: Vec<Option<Receipt>> = vec![None; block.len()];
        for part in parts {
            for (i, r) in part? {
                receipts[i] = Some(r);
            }
        }
        let receipts: Vec<Receipt> = receipts
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(ExecutorError::Invariant("a transaction has no receipt"))?;
        let mut stats = ExecStats::new(
            ExecutorKind::Scheduled,
            self.workers.threads(),
            parallel,
            &receipts,
        );
        stats.conflicts = plan.conflicts;
        let (write_set, fees, fees_burned) = self.write_set(&plan, state, &receipts);
        Ok(Execution {
            receipts,
            write_set,
            fees,
            fees_burned,
            stats,
        })
    }
}
