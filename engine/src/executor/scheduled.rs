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
use super::semantics::{Touched, execute_tx, finish_block};
use super::workers::Workers;
use super::{BlockExecutor, ExecStats, Execution, ExecutorError, ExecutorKind, check_block};
use crate::state::{Account, StateView};
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

struct Plan {
    slots: Vec<Slot>,
    /// (slot, ticket) per declared account, transaction after transaction.
    tickets: Vec<(u32, u32)>,
    /// `tickets[offsets[i]..offsets[i + 1]]` are transaction `i`'s.
    offsets: Vec<u32>,
    /// Longest per-account chain.
    longest_chain: u32,
    /// Tickets that wait for an earlier transaction.
    conflicts: u64,
}

fn plan(block: &[Arc<SignedTransaction>]) -> Plan {
    let mut index = super::hash::address_map::<u32>(block.len() * 2);
    let mut slots: Vec<Slot> = Vec::with_capacity(block.len() * 2);
    let mut counts: Vec<u32> = Vec::with_capacity(block.len() * 2);
    let mut tickets: Vec<(u32, u32)> = Vec::with_capacity(block.len() * 2);
    let mut offsets: Vec<u32> = Vec::with_capacity(block.len() + 1);
    let mut conflicts = 0u64;
    for stx in block {
        let start = tickets.len();
        offsets.push(start as u32);
        let tx = stx.tx();
        let mut declare = |address: &Address| {
            let slot = *index.entry(*address).or_insert_with(|| {
                slots.push(Slot {
                    address: *address,
                    turn: AtomicU32::new(0),
                    balance: AtomicU64::new(0),
                    nonce: AtomicU64::new(0),
                    before_balance: AtomicU64::new(0),
                    before_nonce: AtomicU64::new(0),
                });
                counts.push(0);
                (slots.len() - 1) as u32
            });
            if tickets[start..].iter().any(|(s, _)| *s == slot) {
                return;
            }
            let ticket = counts[slot as usize];
            counts[slot as usize] += 1;
            if ticket > 0 {
                conflicts += 1;
            }
            tickets.push((slot, ticket));
        };
        // The same accounts, in the same order, as `Transaction::accounts`, without its
        // allocation.
        declare(&tx.sender);
        match &tx.op {
            Operation::Transfer { to, .. } => declare(to),
            Operation::MultiTransfer { outputs } => outputs.iter().for_each(|(to, _)| declare(to)),
        }
    }
    offsets.push(tickets.len() as u32);
    Plan {
        slots,
        tickets,
        offsets,
        longest_chain: counts.iter().copied().max().unwrap_or(0),
        conflicts,
    }
}

struct Run<'a> {
    plan: &'a Plan,
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
        let tickets = &self.plan.tickets[from..to];
        for &(slot, ticket) in tickets {
            let s = &self.plan.slots[slot as usize];
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
            tickets
                .iter()
                .map(|(slot, _)| &self.plan.slots[*slot as usize])
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
        for &(slot, ticket) in tickets {
            self.plan.slots[slot as usize]
                .turn
                .store(ticket + 1, Ordering::Release);
        }
        Ok(Receipt {
            tx_hash: stx.hash(),
            status: effect.status,
            fee_charged: effect.fee,
        })
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
        let plan = plan(block);
        let parallel = self.workers.threads() > 1
            && block.len() >= MIN_PARALLEL_TXS
            && (plan.longest_chain as usize) * 2 <= block.len();
        let run = Run {
            plan: &plan,
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
        let touched = plan
            .slots
            .iter()
            .map(|s| Touched {
                address: s.address,
                before: Account {
                    balance: s.before_balance.load(Ordering::Relaxed),
                    nonce: s.before_nonce.load(Ordering::Relaxed),
                },
                after: Account {
                    balance: s.balance.load(Ordering::Relaxed),
                    nonce: s.nonce.load(Ordering::Relaxed),
                },
            })
            .collect();
        let mut stats = ExecStats::new(
            ExecutorKind::Scheduled,
            self.workers.threads(),
            parallel,
            &receipts,
        );
        stats.conflicts = plan.conflicts;
        Ok(finish_block(state, receipts, touched, stats, |v| {
            self.workers.sort(v)
        }))
    }
}
