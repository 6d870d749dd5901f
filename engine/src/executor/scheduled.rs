//! [`ScheduledExecutor`]: conflict-aware parallel execution from declared accounts, without
//! speculation.
//!
//! ## How it works
//!
//! 1. **Plan** (one pass, on the caller): every distinct account of the block gets a *slot*;
//!    every transaction, for each account it declares ([`Transaction::accounts`]: the sender
//!    and the recipients), gets a *ticket*: its position among the block's transactions that
//!    touch that account. The tickets of an account form a chain in block order: this is the
//!    dependency graph of Solana's scheduler or a prio-graph, kept as per-account queues.
//! 2. **Run**: workers claim transactions in block order from a shared counter. A worker
//!    waits until each of its transaction's slots has served all earlier tickets (slot
//!    `turn == ticket`), executes the transaction against the slots' current values, stores
//!    the new values and advances each turn (release/acquire ordering publishes the values to
//!    the next ticket holder). The first ticket of a slot loads the account from the state.
//! 3. Every account thus sees its transactions in block order, and a transaction only ever
//!    reads accounts it waited for, so the result is the sequential one. Claims are in block
//!    order and the lowest claimed, unfinished transaction has no unfinished predecessor, so
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

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

struct Slot {
    address: Address,
    turn: AtomicU32,
    balance: AtomicU64,
    nonce: AtomicU64,
    before_balance: AtomicU64,
    before_nonce: AtomicU64,
}

impl Slot {
    fn new(address: Address) -> Self {
        Self {
            address,
            turn: AtomicU32::new(0),
            balance: AtomicU64::new(0),
            nonce: AtomicU64::new(0),
            before_balance: AtomicU64::new(0),
            before_nonce: AtomicU64::new(0),
        }
    }
}

/// One planned account of one transaction: where its slot is and its place in the slot's
/// chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticket {
    partition: usize,
    slot: usize,
    ticket: u32,
}

impl Ticket {
    fn pack(self) -> u64 {
        (self.partition as u64) << 56 | (self.slot as u64) << 24 | u64::from(self.ticket)
    }

    fn unpack(v: u64) -> Self {
        Self {
            partition: (v >> 56) as usize,
            slot: ((v >> 24) & 0xffff_ffff) as usize,
            ticket: (v & 0xff_ffff) as u32,
        }
    }
}

struct Plan {
    /// Slots by partition: partition `p` of `P` holds the accounts `a` with
    /// `bucket(a) * P / 65,536 == p`.
    slots: Vec<Vec<Slot>>,
    /// A packed [`Ticket`] per declared account, transaction after transaction.
    tickets: Vec<AtomicU64>,
    /// `tickets[offsets[i]..offsets[i + 1]]` are transaction `i`'s.
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

/// Plans the block with `partitions` workers: each scans the whole block and plans the
/// accounts of its partition, so each account's chain is built by one worker, in block
/// order.
fn plan(block: &[Arc<SignedTransaction>], workers: &Workers, partitions: usize) -> Plan {
    let mut offsets: Vec<u32> = Vec::with_capacity(block.len() + 1);
    let mut total = 0usize;
    let mut buf = [FEE_SINK; MAX_TOUCHED];
    for stx in block {
        offsets.push(total as u32);
        total += declared(stx.tx(), &mut buf);
    }
    offsets.push(total as u32);
    let tickets: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    let plan_partition = |p: usize| {
        let capacity = total / partitions + 16;
        let mut index = super::hash::address_map::<usize>(capacity);
        let mut slots: Vec<Slot> = Vec::with_capacity(capacity);
        let mut counts: Vec<u32> = Vec::with_capacity(capacity);
        let mut conflicts = 0u64;
        let mut buf = [FEE_SINK; MAX_TOUCHED];
        for (i, stx) in block.iter().enumerate() {
            let n = declared(stx.tx(), &mut buf);
            for (j, address) in buf[..n].iter().enumerate() {
                if partitions > 1 && partition_of(address, partitions) != p {
                    continue;
                }
                let slot = *index.entry(*address).or_insert_with(|| {
                    slots.push(Slot::new(*address));
                    counts.push(0);
                    slots.len() - 1
                });
                let ticket = counts[slot];
                counts[slot] += 1;
                if ticket > 0 {
                    conflicts += 1;
                }
                tickets[offsets[i] as usize + j].store(
                    Ticket {
                        partition: p,
                        slot,
                        ticket,
                    }
                    .pack(),
                    Ordering::Relaxed,
                );
            }
        }
        let longest = counts.iter().copied().max().unwrap_or(0);
        (slots, longest, conflicts)
    };
    let parts = if partitions > 1 {
        workers.broadcast(plan_partition)
    } else {
        vec![plan_partition(0)]
    };
    let mut plan = Plan {
        slots: Vec::with_capacity(parts.len()),
        tickets,
        offsets,
        longest_chain: 0,
        conflicts: 0,
    };
    for (slots, longest, conflicts) in parts {
        plan.slots.push(slots);
        plan.longest_chain = plan.longest_chain.max(longest);
        plan.conflicts += conflicts;
    }
    plan
}

struct Run<'a> {
    plan: &'a Plan,
    /// A placeholder for unused entries of a transaction's held slots.
    any_slot: &'a Slot,
    block: &'a [Arc<SignedTransaction>],
    base: &'a dyn StateView,
    chain_id: u32,
    next: AtomicUsize,
    failed: AtomicBool,
}

impl Run<'_> {
    /// Claims and executes transactions until none is left. Returns the receipts it made.
    fn work(&self) -> Result<Vec<(usize, Receipt)>, ExecutorError> {
        let mut out = Vec::with_capacity(self.block.len() / 2 + 1);
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(stx) = self.block.get(i) else {
                return Ok(out);
            };
            match self.execute(i, stx) {
                Ok(r) => out.push((i, r)),
                Err(e) => {
                    self.failed.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
    }

    fn execute(&self, i: usize, stx: &SignedTransaction) -> Result<Receipt, ExecutorError> {
        let (from, to) = (
            self.plan.offsets[i] as usize,
            self.plan.offsets[i + 1] as usize,
        );
        let mut held: [(&Slot, u32); MAX_TOUCHED] = [(self.any_slot, 0); MAX_TOUCHED];
        let mut n = 0;
        for packed in &self.plan.tickets[from..to] {
            let t = Ticket::unpack(packed.load(Ordering::Relaxed));
            let slot = self
                .plan
                .slots
                .get(t.partition)
                .and_then(|p| p.get(t.slot))
                .ok_or(ExecutorError::Invariant("a ticket names no slot"))?;
            let Some(h) = held.get_mut(n) else {
                return Err(ExecutorError::Invariant("too many tickets"));
            };
            *h = (slot, t.ticket);
            n += 1;
        }
        let held = &held[..n];
        for &(s, ticket) in held {
            let backoff = Backoff::new();
            while s.turn.load(Ordering::Acquire) != ticket {
                if self.failed.load(Ordering::Relaxed) {
                    return Err(ExecutorError::Aborted);
                }
                backoff.snooze();
            }
            if ticket == 0 {
                let a = self.base.account(&s.address);
                s.before_balance.store(a.balance, Ordering::Relaxed);
                s.before_nonce.store(a.nonce, Ordering::Relaxed);
                s.balance.store(a.balance, Ordering::Relaxed);
                s.nonce.store(a.nonce, Ordering::Relaxed);
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
        let partitions = plan.slots.len();
        let changed = |p: usize| -> (Vec<(Address, Account)>, Option<Touched>) {
            let Some(slots) = plan.slots.get(p) else {
                return (Vec::new(), None);
            };
            let mut out = Vec::with_capacity(slots.len());
            let mut sink = None;
            for s in slots {
                let before = Account {
                    balance: s.before_balance.load(Ordering::Relaxed),
                    nonce: s.before_nonce.load(Ordering::Relaxed),
                };
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
        let plan = plan(block, &self.workers, threads);
        let parallel = threads > 1 && (plan.longest_chain as usize) * 2 <= block.len();
        let placeholder = Slot::new(FEE_SINK);
        let run = Run {
            plan: &plan,
            any_slot: &placeholder,
            block,
            base: state,
            chain_id,
            next: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        };
        let parts = if parallel {
            self.workers.broadcast(|_| run.work())
        } else {
            vec![run.work()]
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
