//! `aurigraph load`: signed transfers at a target rate against a running node, and what the
//! node made of them, measured from its blocks.
//!
//! 1. **Setup** (not timed): one connection per `--connections` (gRPC or REST); the senders'
//!    keys, derived from their index; their accounts; the poor ones funded by multi-transfers
//!    from the development accounts, waited for until committed; transfers pre-signed on
//!    every core.
//! 2. **Sending**, from the head at start until the `--duration` deadline (a hard bound):
//!    each connection's thread owns a share of the senders and offers its share of the rate,
//!    paced against the clock, in requests of up to `--batch`. A sender has at most 64
//!    transactions sent and not yet seen in a block (the node's mempool limit per sender),
//!    so `--senders` x 64 bound what is in flight. A transaction refused for a passing
//!    reason (`E_SENDER_LIMIT`, `E_MEMPOOL_FULL`, `E_OVERLOADED`, no answer) is sent again,
//!    the same bytes, so its sender's nonces stay without a gap; one refused for its nonce
//!    makes its sender ask the node for its next nonce. A follower thread walks every new
//!    block meanwhile: the run's transactions in them, and each sender's committed nonce.
//! 3. **Drain**: the walk goes on until every acknowledged transaction is in a block, or
//!    no block carried one of the run's transactions for `--drain-quiet` (measured after
//!    walking the blocks), or `--drain-timeout`.
//! 4. **Report**: offered (sent, resubmissions included), acknowledged (answered accepted),
//!    refused by code, committed (acknowledged hashes found in the blocks after the head at
//!    start, up to the final head), each with its rate over the time it really took.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use aurigraph_ledger::mempool::MempoolConfig;
use aurigraph_ledger::tx::{
    Address, MAX_OUTPUTS, Operation, SignedTransaction, Transaction, TxHash, keypair_from_seed,
};
use aurigraph_node::config::dev_key;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde::Serialize;

use crate::args::{LoadArgs, LoadTransport};
use crate::client::{LoadApi, Refusal, connect_load};

/// The balance a sender is funded with.
const FUND: u64 = 1_000_000_000;
/// A sender whose balance is below this is funded again.
const FUND_BELOW: u64 = FUND / 10;
/// Fee of every transfer.
const FEE: u64 = 10;
/// Amounts are drawn from 1..=MAX_AMOUNT.
const MAX_AMOUNT: u64 = 1_000;
/// Below full rate, a request waits at most this long to fill up.
const FILL: Duration = Duration::from_millis(20);
/// A sender whose transaction was refused for a passing reason waits this long.
const RETRY_AFTER: Duration = Duration::from_millis(20);
/// The longest wait for the funding transfers to commit.
const FUNDING_TIMEOUT: Duration = Duration::from_secs(60);

/// Transactions one sender may have pending in the node's mempool (`E_SENDER_LIMIT` above).
fn per_sender_limit() -> u64 {
    MempoolConfig::default().max_per_sender as u64
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A failed call as an error that starts with its code.
fn doing(e: Refusal, what: &str) -> anyhow::Error {
    anyhow!("[{}] {what}: {}", e.code, e.message)
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    anyhow!("[E_INTERNAL] a thread of the load tool panicked")
}

/// A sender: its address, and its key inside the signing closure.
struct SenderKey {
    address: Address,
    sign: Box<dyn Fn(Transaction) -> SignedTransaction + Send + Sync>,
}

/// Sender `i`'s key: from a public seed, like the development accounts' (never use it for
/// anything of value). The same `i` is the same account in every run.
fn sender_key(i: u32) -> SenderKey {
    let mut seed = [0u8; 32];
    seed[..24].copy_from_slice(b"aurigraph-load-sender-v1");
    seed[24..28].copy_from_slice(&i.to_le_bytes());
    let (key, address) = keypair_from_seed(seed);
    SenderKey {
        address,
        sign: Box::new(move |t: Transaction| t.sign(&key)),
    }
}

/// A signed transfer waiting to be sent.
struct Pending {
    nonce: u64,
    hash: TxHash,
    bytes: Vec<u8>,
}

/// One sender's state in its connection's thread.
struct Sender {
    /// Index in [`Ctx::keys`] and [`Ctx::committed`].
    idx: usize,
    /// The nonce of the next transaction to sign.
    next_nonce: u64,
    /// The first nonce not yet sent.
    sent_to: u64,
    /// Signed, not sent (or refused for a passing reason and sent again), in nonce order.
    queue: VecDeque<Pending>,
    rng: SmallRng,
    retry_at: Option<Instant>,
    /// Refused `E_INSUFFICIENT_BALANCE`: sends no more.
    retired: bool,
}

impl Sender {
    fn sign_next(&mut self, ctx: &Ctx) -> Pending {
        let n = ctx.keys.len();
        // Another sender (a transfer to oneself is refused); with one sender, development
        // account 0.
        let to = if n > 1 {
            ctx.keys[(self.idx + self.rng.random_range(1..n)) % n].address
        } else {
            ctx.lone_recipient
        };
        let key = &ctx.keys[self.idx];
        let signed = (key.sign)(Transaction {
            chain_id: ctx.chain_id,
            sender: key.address,
            nonce: self.next_nonce,
            fee: FEE,
            op: Operation::Transfer {
                to,
                amount: self.rng.random_range(1..=MAX_AMOUNT),
            },
        });
        self.next_nonce += 1;
        Pending {
            nonce: signed.tx().nonce,
            hash: signed.hash(),
            bytes: signed.encoded().to_vec(),
        }
    }
}

/// What the threads of a run share.
struct Ctx {
    keys: Vec<SenderKey>,
    lone_recipient: Address,
    chain_id: u32,
    start: Instant,
    deadline: Instant,
    batch: usize,
    limit: u64,
    /// Per sender: its committed next nonce, as far as the walk has seen.
    committed: Vec<AtomicU64>,
    offered: AtomicU64,
    acked: AtomicU64,
    /// The run's transactions seen in blocks (acknowledged or not).
    in_blocks: AtomicU64,
    /// A connection met a refusal that every request would meet: all stop.
    stop: AtomicBool,
}

/// What one connection's thread is to do.
struct WorkerPlan {
    senders: Vec<Sender>,
    /// Its share of the rate, transactions per second.
    rate: f64,
    /// Its share of rate x duration.
    quota: u64,
}

/// What one connection's thread did.
#[derive(Default)]
struct WorkerOut {
    offered: u64,
    resubmitted: u64,
    signed_while_sending: u64,
    acked: Vec<TxHash>,
    /// Sent in requests that got no answer (they may have been accepted).
    unanswered: Vec<TxHash>,
    refused: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
    /// Time every sender of the connection was at its in-flight bound (or backing off).
    window_full: Duration,
    fatal: Option<Refusal>,
    ended: Option<Instant>,
}

/// What a refused transaction calls for.
enum Class {
    /// Send the same bytes again shortly.
    Retry,
    /// The node holds it already (pending or committed).
    Held,
    /// The sender's nonce is off: ask the node.
    Resync,
    /// The sender cannot pay: it sends no more.
    Retire,
    /// Every transaction would be refused so: stop the run.
    Fatal,
}

fn class_of_item(code: &str) -> Class {
    match code {
        "E_SENDER_LIMIT" | "E_MEMPOOL_FULL" | "E_OVERLOADED" | "E_NOT_READY" => Class::Retry,
        "E_DUPLICATE" => Class::Held,
        "E_INSUFFICIENT_BALANCE" => Class::Retire,
        "E_WRONG_CHAIN" | "E_FEE_TOO_LOW" | "E_BAD_SIGNATURE" | "E_TX_TOO_LARGE" => Class::Fatal,
        c if c.starts_with("E_TX_") => Class::Fatal,
        _ => Class::Resync,
    }
}

/// Whether a whole request's refusal would meet every request (a wrong `--batch`, a
/// wrong address).
fn fatal_request(code: &str) -> bool {
    matches!(
        code,
        "E_TOO_MANY_TXS"
            | "E_BODY_TOO_LARGE"
            | "E_NO_ROUTE"
            | "E_EMPTY"
            | "E_METHOD_NOT_ALLOWED"
            | "E_HTTP"
            | "E_GRPC_UNIMPLEMENTED"
    ) || code.starts_with("E_BAD_")
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// One connection's sending loop: its senders, its share of the rate, until the deadline.
fn worker(mut api: Box<dyn LoadApi>, mut plan: WorkerPlan, ctx: &Ctx) -> WorkerOut {
    let mut out = WorkerOut::default();
    let n = plan.senders.len();
    let mut cursor = 0usize;
    let mut last_request: Option<Instant> = None;
    let at = |k: u64| ctx.start + Duration::from_secs_f64(k as f64 / plan.rate);
    loop {
        let now = Instant::now();
        if n == 0
            || now >= ctx.deadline
            || out.offered >= plan.quota
            || ctx.stop.load(Ordering::Relaxed)
        {
            break;
        }
        // The transaction of rank k (from 0) is due at start + k / rate.
        let due = ((now - ctx.start).as_secs_f64() * plan.rate) as u64 + 1;
        let want = due.min(plan.quota).saturating_sub(out.offered);
        let want = want.min(ctx.batch as u64) as usize;
        if want == 0 {
            sleep_until(at(out.offered).min(ctx.deadline));
            continue;
        }
        if want < ctx.batch
            && let Some(fill) = last_request.map(|t| t + FILL)
            && now < fill
        {
            // Below full rate: let the request fill up a little.
            let full = at(out.offered + ctx.batch as u64 - 1);
            sleep_until(fill.min(full).min(ctx.deadline));
            continue;
        }
        let mut batch: Vec<(usize, Pending)> = Vec::with_capacity(want);
        let mut idle = 0;
        while batch.len() < want && idle < n {
            let li = cursor;
            cursor = (cursor + 1) % n;
            let s = &mut plan.senders[li];
            let resend = s.queue.front().is_some_and(|p| p.nonce < s.sent_to);
            let in_flight = s
                .sent_to
                .saturating_sub(ctx.committed[s.idx].load(Ordering::Relaxed));
            let ready = !s.retired
                && s.retry_at.is_none_or(|t| t <= now)
                && (resend || in_flight < ctx.limit);
            if !ready {
                idle += 1;
                continue;
            }
            idle = 0;
            s.retry_at = None;
            if s.queue.is_empty() {
                let p = s.sign_next(ctx);
                s.queue.push_back(p);
                out.signed_while_sending += 1;
            }
            if let Some(p) = s.queue.pop_front() {
                if p.nonce >= s.sent_to {
                    s.sent_to = p.nonce + 1;
                } else {
                    out.resubmitted += 1;
                }
                batch.push((li, p));
            }
        }
        if batch.is_empty() {
            // Every sender is at its bound (or waiting to send again): wait for blocks.
            let t = Instant::now();
            sleep_until((t + Duration::from_millis(1)).min(ctx.deadline));
            out.window_full += t.elapsed();
            continue;
        }
        let bytes: Vec<Vec<u8>> = batch.iter().map(|(_, p)| p.bytes.clone()).collect();
        let t0 = Instant::now();
        last_request = Some(t0);
        let answer = api.submit(bytes);
        out.latencies.push(t0.elapsed());
        let k = batch.len() as u64;
        out.offered += k;
        ctx.offered.fetch_add(k, Ordering::Relaxed);
        let mut requeue: Vec<(usize, Pending)> = Vec::new();
        let mut resync: Vec<usize> = Vec::new();
        match answer {
            Ok(items) if items.len() == batch.len() => {
                let mut acked = 0;
                for ((li, p), item) in batch.into_iter().zip(items) {
                    let Some(code) = item else {
                        out.acked.push(p.hash);
                        acked += 1;
                        continue;
                    };
                    match class_of_item(&code) {
                        Class::Retry => requeue.push((li, p)),
                        Class::Held => {}
                        Class::Resync => resync.push(li),
                        Class::Retire => plan.senders[li].retired = true,
                        Class::Fatal => {
                            if out.fatal.is_none() {
                                out.fatal = Some(Refusal {
                                    code: code.clone(),
                                    message: "the node refuses every transfer this tool signs \
                                              (--chain-id? the node's minimum fee?)"
                                        .into(),
                                });
                            }
                        }
                    }
                    *out.refused.entry(code).or_default() += 1;
                }
                ctx.acked.fetch_add(acked, Ordering::Relaxed);
            }
            other => {
                let refusal = match other {
                    Err(r) => r,
                    Ok(items) => Refusal {
                        code: "E_ANSWER".into(),
                        message: format!("{} results for {} transactions", items.len(), k),
                    },
                };
                *out.refused.entry(refusal.code.clone()).or_default() += k;
                if fatal_request(&refusal.code) {
                    out.fatal = Some(refusal);
                } else {
                    if refusal.unanswered() {
                        out.unanswered.extend(batch.iter().map(|(_, p)| p.hash));
                    }
                    requeue = batch;
                }
            }
        }
        if let Some(f) = &out.fatal {
            tracing::debug!(code = %f.code, "the load stops: {}", f.message);
            ctx.stop.store(true, Ordering::Relaxed);
            break;
        }
        // Back in front of their senders' queues, in nonce order.
        let retry_at = Instant::now() + RETRY_AFTER;
        for (li, p) in requeue.into_iter().rev() {
            let s = &mut plan.senders[li];
            s.queue.push_front(p);
            s.retry_at = Some(retry_at);
        }
        resync.sort_unstable();
        resync.dedup();
        for li in resync {
            let s = &mut plan.senders[li];
            match api.account(&ctx.keys[s.idx].address) {
                Ok(a) => {
                    s.queue.clear();
                    s.next_nonce = a.next_nonce;
                    s.sent_to = a.next_nonce;
                }
                Err(_) => s.retry_at = Some(Instant::now() + 5 * RETRY_AFTER),
            }
        }
    }
    out.ended = Some(Instant::now());
    out
}

/// Walks the node's blocks after a height: the run's transactions in them.
struct Walker {
    api: Box<dyn LoadApi>,
    /// Walked up to this height.
    height: u64,
    /// The run's senders by address.
    index: HashMap<Address, usize>,
    /// The run's transactions seen in blocks, and the height of each.
    seen: HashMap<TxHash, u64>,
    /// Those whose receipt is not `OK`, and its code.
    not_ok: HashMap<TxHash, String>,
    /// Blocks carrying some of the run's transactions: when the walk read them and the
    /// proposer's timestamp (Unix ms).
    carrying: BTreeMap<u64, (Instant, u64)>,
    errors: u64,
    last_error: Option<Refusal>,
}

impl Walker {
    /// Walks every block up to the node's head (or until `stop` is set); pushes the run's
    /// transactions found onto `fresh` when given. The number of blocks walked.
    fn step(
        &mut self,
        ctx: &Ctx,
        mut fresh: Option<&mut Vec<TxHash>>,
        stop: Option<&AtomicBool>,
    ) -> Result<u64, Refusal> {
        let (head, _) = self.api.head()?;
        let mut walked = 0;
        while self.height < head && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            let heights: Vec<u64> = (self.height + 1..=head.min(self.height + 64)).collect();
            for (h, b) in heights.iter().zip(self.api.blocks(&heights)) {
                let b = b?;
                let mut ours = 0;
                for t in b.txs {
                    let Some(&i) = self.index.get(&t.sender) else {
                        continue;
                    };
                    ours += 1;
                    ctx.committed[i].fetch_max(t.nonce + 1, Ordering::Relaxed);
                    self.seen.insert(t.hash, *h);
                    if t.code != "OK" {
                        self.not_ok.insert(t.hash, t.code);
                    }
                    if let Some(f) = fresh.as_deref_mut() {
                        f.push(t.hash);
                    }
                }
                if ours > 0 {
                    self.carrying.insert(*h, (Instant::now(), b.timestamp_ms));
                    ctx.in_blocks.fetch_add(ours, Ordering::Relaxed);
                }
                self.height = *h;
                walked += 1;
            }
        }
        Ok(walked)
    }

    fn failed(&mut self, e: Refusal) {
        self.errors += 1;
        self.last_error = Some(e);
    }
}

/// The follower: walks new blocks while the connections send.
fn follow(mut w: Walker, ctx: &Ctx, stop: &AtomicBool) -> Walker {
    while !stop.load(Ordering::Relaxed) {
        match w.step(ctx, None, Some(stop)) {
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => {}
            Err(e) => {
                w.failed(e);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    w
}

/// The accounts of `addrs`, asked over every connection at once.
fn accounts(
    apis: &mut [Box<dyn LoadApi>],
    addrs: &[Address],
) -> Result<Vec<crate::client::AccountFigures>> {
    let chunk = addrs.len().div_ceil(apis.len()).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = apis
            .iter_mut()
            .zip(addrs.chunks(chunk))
            .map(|(api, part)| {
                s.spawn(move || {
                    part.iter()
                        .map(|a| api.account(a))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(addrs.len());
        for p in parts {
            all.extend(
                p.join()
                    .map_err(panicked)?
                    .map_err(|e| doing(e, "reading the senders' accounts"))?,
            );
        }
        Ok(all)
    })
}

/// What the setup did.
#[derive(Debug, Default, Serialize)]
struct Setup {
    /// Senders funded in this run (the others had funds).
    funded: usize,
    /// Multi-transfers from the development accounts that funded them.
    funding_transfers: usize,
    /// Submitting them until all committed.
    funding_seconds: f64,
    /// Transfers signed before the clock started.
    presigned: u64,
    presign_seconds: f64,
    presign_threads: usize,
}

/// Funds the senders whose balance is below [`FUND_BELOW`] with [`FUND`] each, by
/// multi-transfers from the development accounts, and waits until they commit (the caller
/// checks the balances). The senders funded and the transfers.
fn fund(
    api: &mut dyn LoadApi,
    args: &LoadArgs,
    chain_id: u32,
    keys: &[SenderKey],
    balances: &[u64],
    note: &dyn Fn(&str),
) -> Result<(usize, usize)> {
    let needy: Vec<Address> = keys
        .iter()
        .zip(balances)
        .filter(|(_, b)| **b < FUND_BELOW)
        .map(|(k, _)| k.address)
        .collect();
    if needy.is_empty() {
        return Ok((0, 0));
    }
    let groups: Vec<&[Address]> = needy.chunks(MAX_OUTPUTS).collect();
    let per_transfer = (MAX_OUTPUTS as u64) * FUND + FEE;
    // Funders: development accounts that can pay, each up to its per-sender limit.
    let mut funders = Vec::new();
    let mut capacity = 0usize;
    for i in 0..args.dev_accounts {
        if capacity >= groups.len() {
            break;
        }
        let (key, address) = dev_key(i);
        let a = api
            .account(&address)
            .map_err(|e| doing(e, &format!("reading development account {i}")))?;
        let can = (a.balance / per_transfer).min(per_sender_limit()) as usize;
        if can > 0 {
            capacity += can;
            funders.push((key, address, a.next_nonce, can, 0usize));
        }
    }
    if capacity < groups.len() {
        bail!(
            "[E_FUNDING] {} senders need funds ({} each) and the development accounts 0..{} \
             can fund {} of them: fewer --senders, or a genesis with more (--dev-accounts)",
            needy.len(),
            FUND,
            args.dev_accounts,
            capacity * MAX_OUTPUTS
        );
    }
    note(&format!(
        "funding {} senders from {} development accounts ({} multi-transfers)",
        needy.len(),
        funders.len(),
        groups.len()
    ));
    let mut signed = Vec::with_capacity(groups.len());
    let mut last_nonce: Vec<Option<u64>> = vec![None; funders.len()];
    let mut f = 0;
    for group in &groups {
        while funders[f].4 >= funders[f].3 {
            f = (f + 1) % funders.len();
        }
        let (key, address, next, _, used) = &mut funders[f];
        let nonce = *next + *used as u64;
        *used += 1;
        last_nonce[f] = Some(nonce);
        let tx = Transaction {
            chain_id,
            sender: *address,
            nonce,
            fee: FEE,
            op: Operation::MultiTransfer {
                outputs: group.iter().map(|a| (*a, FUND)).collect(),
            },
        }
        .sign(key);
        signed.push(tx);
        f = (f + 1) % funders.len();
    }
    for chunk in signed.chunks(args.batch.clamp(1, 1_000)) {
        let answers = api
            .submit(chunk.iter().map(|t| t.encoded().to_vec()).collect())
            .context("[E_FUNDING] submitting the funding transfers")?;
        if let Some(code) = answers.into_iter().flatten().next() {
            bail!(
                "[E_FUNDING] the node refused a funding transfer from a development account: \
                 {code}"
            );
        }
    }
    // Committed once each funder's committed nonce passes its last funding transfer.
    let until = Instant::now() + FUNDING_TIMEOUT;
    for ((_, address, _, _, _), last) in funders.iter().zip(&last_nonce) {
        let Some(last) = last else { continue };
        loop {
            let a = api
                .account(address)
                .map_err(|e| doing(e, "waiting for the funding transfers"))?;
            if a.nonce > *last {
                break;
            }
            if Instant::now() > until {
                bail!(
                    "[E_FUNDING] the funding transfers did not commit within {FUNDING_TIMEOUT:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok((needy.len(), groups.len()))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 1e2
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3).round() / 1e3
}

fn per_sec(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        (n as f64 / d.as_secs_f64()).round()
    }
}

/// What was asked.
#[derive(Debug, Serialize)]
struct Asked {
    rate: u64,
    duration_seconds: f64,
    /// rate x duration.
    transactions: u64,
}

/// What was sent.
#[derive(Debug, Serialize)]
struct Offered {
    /// Transactions sent, resubmissions included.
    transactions: u64,
    /// Of them, transactions sent again after a refusal for a passing reason.
    resubmissions: u64,
    /// Transfers signed while sending (beyond the pre-signed ones).
    signed_while_sending: u64,
    /// From the start to the last answer of the sending phase.
    seconds: f64,
    rate: f64,
    /// rate / the rate asked.
    of_asked: f64,
    /// `deadline` (the duration ran out first) or `all sent`.
    stopped_by: &'static str,
}

/// Counted, with its rate.
#[derive(Debug, Serialize)]
struct Rated {
    transactions: u64,
    rate: f64,
}

/// What committed, from the node's blocks.
#[derive(Debug, Serialize)]
struct Committed {
    /// Acknowledged hashes found in blocks start_head+1..=final_head.
    transactions: u64,
    /// From the start to when the walk read the last block carrying one of them.
    seconds: f64,
    rate: f64,
    /// The same span by the proposer's clock (block timestamp minus this tool's start).
    node_clock_seconds: Option<f64>,
    /// Their receipts by code (`OK`, `E_EXEC_*`).
    receipts: BTreeMap<String, u64>,
    /// Transactions sent in requests that got no answer, found in blocks all the same.
    unacknowledged_in_blocks: u64,
    /// Acknowledged, not in a block by the end of the drain.
    not_committed: u64,
}

/// How the drain went.
#[derive(Debug, Serialize)]
struct Drain {
    seconds: f64,
    /// `all acknowledged committed`, `quiet` or `timeout`.
    ended_by: &'static str,
    quiet_seconds: f64,
    timeout_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// The closing report (`--json` prints it as is).
#[derive(Debug, Serialize)]
struct Report {
    node: String,
    transport: &'static str,
    connections: usize,
    batch: usize,
    senders: u32,
    /// Pending transactions the node's mempool holds per sender.
    per_sender_limit: u64,
    /// senders x per_sender_limit: transactions in flight at most.
    in_flight_bound: u64,
    setup: Setup,
    asked: Asked,
    offered: Offered,
    acknowledged: Rated,
    refused: BTreeMap<String, u64>,
    committed: Committed,
    start_head: u64,
    final_head: u64,
    drain: Drain,
    /// Start of sending to the end of the drain.
    wall_seconds: f64,
    /// Summed over the connections: time every sender of a connection was at its
    /// in-flight bound (or waiting to send a refused transaction again).
    senders_at_bound_seconds: f64,
    request_latency: Latency,
    /// Failed reads of the head or a block (retried).
    block_read_errors: u64,
}

/// Runs `aurigraph load`: setup, sending, drain, report.
pub fn load(args: &LoadArgs) -> Result<()> {
    let (report, acked) = run(args)?;
    if let Some(path) = &args.hashes {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        for h in &acked {
            writeln!(w, "{h}")?;
        }
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table(&report));
    }
    Ok(())
}

/// Sender keys 0..n, derived on every core.
fn derive_keys(n: usize) -> Result<Vec<SenderKey>> {
    let ids: Vec<u32> = (0..n as u32).collect();
    std::thread::scope(|s| {
        let parts: Vec<_> = ids
            .chunks(n.div_ceil(threads()).max(1))
            .map(|c| s.spawn(move || c.iter().copied().map(sender_key).collect::<Vec<_>>()))
            .collect();
        let mut all = Vec::with_capacity(n);
        for p in parts {
            all.extend(p.join().map_err(panicked)?);
        }
        Ok(all)
    })
}

/// Signs `each` transfers ahead for every sender, on every core.
fn presign(senders: &mut [Sender], ctx: &Ctx, each: u64, threads: usize) -> Result<()> {
    let chunk = senders.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = senders
            .chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || {
                    for snd in part {
                        for _ in 0..each {
                            let p = snd.sign_next(ctx);
                            snd.queue.push_back(p);
                        }
                    }
                })
            })
            .collect();
        for p in parts {
            p.join().map_err(panicked)?;
        }
        Ok(())
    })
}

/// Splits the senders over `w` connections (sender i to connection i % w), each with its
/// share of the rate and of the planned total.
fn plans(senders: Vec<Sender>, w: usize, rate: u64, planned: u64) -> Vec<WorkerPlan> {
    let n = senders.len() as u64;
    let mut shares: Vec<Vec<Sender>> = (0..w).map(|_| Vec::new()).collect();
    for s in senders {
        shares[s.idx % w].push(s);
    }
    let mut assigned = 0u64;
    let mut plans = Vec::with_capacity(w);
    for (i, share) in shares.into_iter().enumerate() {
        let k = share.len() as u64;
        let quota = if i + 1 == w {
            planned - assigned
        } else {
            planned * k / n
        };
        assigned += quota;
        plans.push(WorkerPlan {
            senders: share,
            rate: rate as f64 * k as f64 / n as f64,
            quota,
        });
    }
    plans
}

/// The sending phase: the connections' threads and the follower, a progress bar meanwhile.
/// What each connection did, and the walker where the follower left it.
fn send(
    ctx: &Ctx,
    apis: Vec<Box<dyn LoadApi>>,
    plans: Vec<WorkerPlan>,
    walker: Walker,
    bar: &ProgressBar,
) -> Result<(Vec<WorkerOut>, Walker)> {
    let follower_stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &follower_stop;
        let follower = s.spawn(move || follow(walker, ctx, stop));
        let handles: Vec<_> = apis
            .into_iter()
            .zip(plans)
            .map(|(api, plan)| s.spawn(move || worker(api, plan, ctx)))
            .collect();
        let mut drawn = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
            if drawn.elapsed() < Duration::from_millis(100) {
                continue;
            }
            drawn = Instant::now();
            let offered = ctx.offered.load(Ordering::Relaxed);
            bar.set_position(offered);
            bar.set_message(format!(
                "{} acknowledged, {} in blocks, {:.0} tx/s",
                ctx.acked.load(Ordering::Relaxed),
                ctx.in_blocks.load(Ordering::Relaxed),
                per_sec(offered, ctx.start.elapsed())
            ));
        }
        let mut outs = Vec::with_capacity(handles.len());
        for h in handles {
            outs.push(h.join().map_err(panicked)?);
        }
        stop.store(true, Ordering::Relaxed);
        let walker = follower.join().map_err(panicked)?;
        Ok((outs, walker))
    })
}

/// The drain: walks new blocks until every one of `acked` is in a block, or no block
/// carried one of the run's transactions for `quiet` (counted from the end of the walk that
/// last found one), or `timeout`. How it ended.
fn drain(
    walker: &mut Walker,
    ctx: &Ctx,
    acked: &HashSet<TxHash>,
    quiet: Duration,
    timeout: Duration,
    spinner: &ProgressBar,
) -> &'static str {
    let start = Instant::now();
    let mut missing: HashSet<TxHash> = acked
        .iter()
        .filter(|h| !walker.seen.contains_key(*h))
        .copied()
        .collect();
    let mut quiet_since = start;
    let until = start + timeout;
    loop {
        if missing.is_empty() {
            return "all acknowledged committed";
        }
        if Instant::now() >= until {
            return "timeout";
        }
        let mut fresh = Vec::new();
        if let Err(e) = walker.step(ctx, Some(&mut fresh), None) {
            walker.failed(e);
        }
        // What a walk found counts even when it stopped on an error.
        if !fresh.is_empty() {
            quiet_since = Instant::now();
            for h in &fresh {
                missing.remove(h);
            }
        }
        if missing.is_empty() {
            return "all acknowledged committed";
        }
        if quiet_since.elapsed() >= quiet {
            return "quiet";
        }
        spinner.set_message(format!(
            "draining: {} of {} acknowledged in blocks (head {})",
            acked.len() - missing.len(),
            acked.len(),
            walker.height
        ));
        spinner.tick();
        sleep_until((Instant::now() + Duration::from_millis(20)).min(until));
    }
}

/// The connections' figures together.
#[derive(Default)]
struct Totals {
    offered: u64,
    resubmitted: u64,
    signed_while_sending: u64,
    at_bound: Duration,
    acked: Vec<TxHash>,
    unanswered: Vec<TxHash>,
    refused: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

fn totals(outs: Vec<WorkerOut>) -> Totals {
    let mut t = Totals::default();
    for o in outs {
        t.offered += o.offered;
        t.resubmitted += o.resubmitted;
        t.signed_while_sending += o.signed_while_sending;
        t.at_bound += o.window_full;
        t.acked.extend(o.acked);
        t.unanswered.extend(o.unanswered);
        t.latencies.extend(o.latencies);
        for (c, k) in o.refused {
            *t.refused.entry(c).or_default() += k;
        }
    }
    t.latencies.sort_unstable();
    t
}

/// Runs the load as `aurigraph load` does, without printing: the report (as `--json` prints
/// it) and the acknowledged hashes. `aurigraph chaos` offers its overload through it.
pub(crate) fn run_json(args: &LoadArgs) -> Result<(serde_json::Value, Vec<TxHash>)> {
    let (report, acked) = run(args)?;
    Ok((serde_json::to_value(&report)?, acked))
}

fn run(args: &LoadArgs) -> Result<(Report, Vec<TxHash>)> {
    if args.rate == 0 || args.batch == 0 || args.duration.is_zero() {
        bail!("[E_CONFIG] --rate, --batch and --duration must be positive");
    }
    if args.rate > 10_000_000 || args.batch > 100_000 {
        bail!("[E_CONFIG] --rate is at most 10,000,000 and --batch at most 100,000");
    }
    let quiet = args.quiet;
    let note = |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let url = args.node.node.as_str();
    let transport = args.transport;
    let n = args.senders as usize;
    let w = (args.connections as usize).clamp(1, n.max(1));
    let mut apis = (0..w)
        .map(|_| connect_load(transport, url, args.request_timeout))
        .collect::<Result<Vec<_>>>()?;
    let (_, node_chain) = apis[0]
        .head()
        .map_err(|e| doing(e, &format!("reading the head of the node at {url}")))?;
    let chain_id = args.chain_id.unwrap_or(node_chain);

    // Setup: the senders, their accounts, their funds, their first transfers.
    let keys = derive_keys(n)?;
    let addrs: Vec<Address> = keys.iter().map(|k| k.address).collect();
    let mut setup = Setup::default();
    let t = Instant::now();
    let before = accounts(&mut apis, &addrs)?;
    let balances: Vec<u64> = before.iter().map(|a| a.balance).collect();
    let (funded, transfers) = fund(&mut *apis[0], args, chain_id, &keys, &balances, &note)?;
    setup.funded = funded;
    setup.funding_transfers = transfers;
    setup.funding_seconds = secs(t.elapsed());
    // The balances funded, and the nonces (funding does not move them, another client may
    // have).
    let figures = if funded > 0 {
        let after = accounts(&mut apis, &addrs)?;
        if let Some((i, a)) = after
            .iter()
            .enumerate()
            .find(|(_, a)| a.balance < FUND_BELOW)
        {
            bail!(
                "[E_FUNDING] sender {i} ({}) has a balance of {} after its funding committed",
                addrs[i].to_hex(),
                a.balance
            );
        }
        after
    } else {
        before
    };
    let limit = per_sender_limit();
    let planned = ((args.rate as f64) * args.duration.as_secs_f64()).round() as u64;
    let mut senders: Vec<Sender> = figures
        .iter()
        .enumerate()
        .map(|(i, a)| Sender {
            idx: i,
            next_nonce: a.next_nonce,
            sent_to: a.next_nonce,
            queue: VecDeque::new(),
            rng: SmallRng::seed_from_u64(
                args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64),
            ),
            retry_at: None,
            retired: false,
        })
        .collect();
    let mut ctx = Ctx {
        keys,
        lone_recipient: dev_key(0).1,
        chain_id,
        start: Instant::now(),
        deadline: Instant::now(),
        batch: args.batch,
        limit,
        committed: figures.iter().map(|a| AtomicU64::new(a.nonce)).collect(),
        offered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        in_blocks: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let each = planned.min(args.presign).div_ceil(n as u64);
    if each > 0 {
        let t = Instant::now();
        let threads = threads();
        note(&format!(
            "pre-signing {} transfers on {threads} threads",
            each * n as u64
        ));
        presign(&mut senders, &ctx, each, threads)?;
        setup.presigned = each * n as u64;
        setup.presign_seconds = secs(t.elapsed());
        setup.presign_threads = threads;
    }
    let plans = plans(senders, w, args.rate, planned);
    let mut walker = Walker {
        api: connect_load(transport, url, args.request_timeout)?,
        height: 0,
        index: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
        seen: HashMap::new(),
        not_ok: HashMap::new(),
        carrying: BTreeMap::new(),
        errors: 0,
        last_error: None,
    };
    let (start_head, _) = walker
        .api
        .head()
        .map_err(|e| doing(e, "reading the node's head"))?;
    walker.height = start_head;

    // Sending, until the deadline.
    note(&format!(
        "sending {} tx/s for {:?} over {w} {} connections from {n} senders (in flight at most \
         {} = {n} x {limit})",
        args.rate,
        args.duration,
        transport_name(transport),
        n as u64 * limit
    ));
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(planned)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} offered  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let start_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ctx.start = start;
    ctx.deadline = start + args.duration;
    let ctx = ctx;
    let (outs, mut walker) = send(&ctx, apis, plans, walker, &bar)?;
    bar.finish_and_clear();
    if let Some(f) = outs.iter().find_map(|o| o.fatal.clone()) {
        bail!("[{}] {}: the load stopped", f.code, f.message);
    }
    let send_time = outs.iter().filter_map(|o| o.ended).max().unwrap_or(start) - start;
    let t = totals(outs);
    let acked_set: HashSet<TxHash> = t.acked.iter().copied().collect();

    // Drain.
    let spinner = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    let drain_start = Instant::now();
    let ended_by = drain(
        &mut walker,
        &ctx,
        &acked_set,
        args.drain_quiet,
        args.drain_timeout,
        &spinner,
    );
    let drain_end = Instant::now();
    spinner.finish_and_clear();
    if let Some(e) = &walker.last_error {
        tracing::warn!(
            errors = walker.errors,
            "reading blocks failed at times: {e}"
        );
    }

    // Committed: the acknowledged hashes found in blocks start_head+1..=final_head.
    let mut committed = 0u64;
    let mut receipts: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_height = None::<u64>;
    for h in &t.acked {
        if let Some(&height) = walker.seen.get(h) {
            committed += 1;
            let code = walker.not_ok.get(h).map_or("OK", String::as_str);
            *receipts.entry(code.to_string()).or_default() += 1;
            last_height = last_height.max(Some(height));
        }
    }
    let unacknowledged_in_blocks = t
        .unanswered
        .iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .filter(|h| walker.seen.contains_key(*h) && !acked_set.contains(*h))
        .count() as u64;
    let (commit_time, node_clock) = match last_height.and_then(|h| walker.carrying.get(&h)) {
        Some((seen_at, ts)) => (
            *seen_at - start,
            (*ts >= start_unix_ms).then(|| (*ts - start_unix_ms) as f64 / 1e3),
        ),
        None => (Duration::ZERO, None),
    };
    let acked_n = t.acked.len() as u64;
    let offered_rate = per_sec(t.offered, send_time);
    let report = Report {
        node: url.to_string(),
        transport: transport_name(transport),
        connections: w,
        batch: args.batch,
        senders: args.senders,
        per_sender_limit: limit,
        in_flight_bound: n as u64 * limit,
        setup,
        asked: Asked {
            rate: args.rate,
            duration_seconds: secs(args.duration),
            transactions: planned,
        },
        offered: Offered {
            transactions: t.offered,
            resubmissions: t.resubmitted,
            signed_while_sending: t.signed_while_sending,
            seconds: secs(send_time),
            rate: offered_rate,
            of_asked: (offered_rate / args.rate as f64 * 1e3).round() / 1e3,
            stopped_by: if t.offered >= planned {
                "all sent"
            } else {
                "deadline"
            },
        },
        acknowledged: Rated {
            transactions: acked_n,
            rate: per_sec(acked_n, send_time),
        },
        refused: t.refused,
        committed: Committed {
            transactions: committed,
            seconds: secs(commit_time),
            rate: per_sec(committed, commit_time),
            node_clock_seconds: node_clock,
            receipts,
            unacknowledged_in_blocks,
            not_committed: acked_n - committed,
        },
        start_head,
        final_head: walker.height,
        drain: Drain {
            seconds: secs(drain_end - drain_start),
            ended_by,
            quiet_seconds: secs(args.drain_quiet),
            timeout_seconds: secs(args.drain_timeout),
        },
        wall_seconds: secs(drain_end - start),
        senders_at_bound_seconds: secs(t.at_bound),
        request_latency: Latency {
            requests: t.latencies.len(),
            p50_ms: ms(percentile(&t.latencies, 0.5)),
            p99_ms: ms(percentile(&t.latencies, 0.99)),
            max_ms: ms(t.latencies.last().copied().unwrap_or_default()),
        },
        block_read_errors: walker.errors,
    };
    Ok((report, t.acked))
}

fn transport_name(t: LoadTransport) -> &'static str {
    match t {
        LoadTransport::Grpc => "grpc",
        LoadTransport::Rest => "rest",
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["", "figure"]);
    let o = &r.offered;
    let c = &r.committed;
    t.add_row([
        "asked".to_string(),
        format!(
            "{} tx/s for {:.2} s = {} tx, {} over {} connection(s), requests of up to {}",
            thousands(r.asked.rate),
            r.asked.duration_seconds,
            thousands(r.asked.transactions),
            r.transport,
            r.connections,
            r.batch
        ),
    ]);
    t.add_row([
        "senders".to_string(),
        format!(
            "{} (funded now: {}); in flight at most {} = {} x {} pending per sender{}",
            thousands(r.senders as u64),
            r.setup.funded,
            thousands(r.in_flight_bound),
            thousands(r.senders as u64),
            r.per_sender_limit,
            if r.senders_at_bound_seconds > 0.05 * o.seconds * r.connections as f64 {
                format!(
                    "; every sender at the bound {:.2} s (summed over connections): more \
                     --senders would offer more",
                    r.senders_at_bound_seconds
                )
            } else {
                String::new()
            }
        ),
    ]);
    t.add_row([
        "setup".to_string(),
        format!(
            "funding {:.2} s ({} multi-transfers), pre-signing {} in {:.2} s on {} threads",
            r.setup.funding_seconds,
            r.setup.funding_transfers,
            thousands(r.setup.presigned),
            r.setup.presign_seconds,
            r.setup.presign_threads
        ),
    ]);
    t.add_row([
        "offered".to_string(),
        format!(
            "{} tx in {:.2} s = {} tx/s ({:.0}% of the rate asked; stopped by {}){}",
            thousands(o.transactions),
            o.seconds,
            thousands(o.rate as u64),
            o.of_asked * 100.0,
            o.stopped_by,
            if o.resubmissions > 0 {
                format!(
                    "; {} of them resubmissions after a passing refusal",
                    thousands(o.resubmissions)
                )
            } else {
                String::new()
            }
        ),
    ]);
    t.add_row([
        "acknowledged".to_string(),
        format!(
            "{} tx = {} tx/s over the {:.2} s of sending",
            thousands(r.acknowledged.transactions),
            thousands(r.acknowledged.rate as u64),
            o.seconds
        ),
    ]);
    let refused = if r.refused.is_empty() {
        "none".to_string()
    } else {
        r.refused
            .iter()
            .map(|(c, k)| format!("{c} {}", thousands(*k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.add_row(["refused".to_string(), refused]);
    t.add_row([
        "committed".to_string(),
        format!(
            "{} tx of the acknowledged in blocks {}..={} = {} tx/s over {:.2} s (start to the \
             last block carrying one{}); receipts: {}",
            thousands(c.transactions),
            r.start_head + 1,
            r.final_head,
            thousands(c.rate as u64),
            c.seconds,
            c.node_clock_seconds
                .map(|s| format!("; {s:.2} s by the node's block timestamps"))
                .unwrap_or_default(),
            c.receipts
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]);
    t.add_row([
        "not committed".to_string(),
        format!(
            "{} acknowledged{}",
            thousands(c.not_committed),
            if c.unacknowledged_in_blocks > 0 {
                format!(
                    "; {} sent without an answer are in blocks too (not counted)",
                    thousands(c.unacknowledged_in_blocks)
                )
            } else {
                String::new()
            }
        ),
    ]);
    t.add_row([
        "drain".to_string(),
        format!(
            "{:.2} s, ended by {} (quiet period {:.1} s, timeout {:.1} s)",
            r.drain.seconds, r.drain.ended_by, r.drain.quiet_seconds, r.drain.timeout_seconds
        ),
    ]);
    t.add_row([
        "wall".to_string(),
        format!("{:.2} s, sending and drain", r.wall_seconds),
    ]);
    t.add_row([
        "request latency".to_string(),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
            r.request_latency.p50_ms,
            r.request_latency.p99_ms,
            r.request_latency.max_ms,
            thousands(r.request_latency.requests as u64)
        ),
    ]);
    if r.block_read_errors > 0 {
        t.add_row([
            "block reads".to_string(),
            format!("{} failed and were retried", r.block_read_errors),
        ]);
    }
    t
}
