//! The Raft state machine over the ledger: real signed transfers applied through openraft's
//! `RaftStateMachine` methods, roots checked against the sequential executor, a block with a
//! wrong root refused with nothing changed, snapshots built and installed, the Raft state
//! read back from the applier, and openraft's storage suite with the RocksDB log store.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use aurigraph_consensus::ledger_applier::LedgerApplier;
use aurigraph_consensus::log_store::RaftLogStore;
use aurigraph_consensus::state_machine::{
    ApplyError, BlockApplier, BlockStateMachine, SnapshotData,
};
use aurigraph_consensus::types::{BlockEntry, Entry, LogId, TypeConfig};
use aurigraph_ledger::executor::{BlockExecutor, ExecutorConfig, ExecutorKind, SequentialExecutor};
use aurigraph_ledger::state::{Genesis, ShardedState, StateRoot, StateView};
use aurigraph_ledger::tx::{Address, Operation, SignedTransaction, Transaction, keypair_from_seed};
use aurigraph_storage::Storage;
use ed25519_consensus::SigningKey;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;

const CHAIN: u32 = 7;

struct Key {
    key: SigningKey,
    address: Address,
}

fn key(seed: u8) -> Key {
    let (key, address) = keypair_from_seed([seed; 32]);
    Key { key, address }
}

fn transfer(from: &Key, to: Address, nonce: u64, amount: u64) -> Vec<u8> {
    Transaction {
        chain_id: CHAIN,
        sender: from.address,
        nonce,
        fee: 1,
        op: Operation::Transfer { to, amount },
    }
    .sign(&from.key)
    .encoded()
    .to_vec()
}

fn genesis(keys: &[&Key]) -> Genesis {
    Genesis {
        chain_id: CHAIN,
        allocations: keys.iter().map(|k| (k.address, 1_000_000)).collect(),
    }
}

fn applier(genesis: &Genesis) -> LedgerApplier {
    let executor = ExecutorConfig {
        kind: ExecutorKind::Scheduled,
        threads: 2,
    };
    LedgerApplier::new(genesis, 16, executor).expect("applier")
}

fn state_machine(genesis: &Genesis) -> BlockStateMachine<LedgerApplier> {
    BlockStateMachine::new(applier(genesis)).expect("state machine")
}

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

fn normal(term: u64, index: u64, block: BlockEntry) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(block),
    }
}

fn blank(term: u64, index: u64) -> Entry {
    openraft::testing::blank_ent::<TypeConfig>(term, 1, index)
}

fn membership(term: u64, index: u64, voters: &[u64]) -> Entry {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    openraft::testing::membership_ent::<TypeConfig>(term, 1, index, vec![voters])
}

/// Applies `entries` through `RaftStateMachine::apply` (no client waits for a response).
async fn apply<A: BlockApplier>(
    sm: &mut BlockStateMachine<A>,
    entries: Vec<Entry>,
) -> io::Result<()> {
    let stream = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await
}

fn code(err: &io::Error) -> &'static str {
    ApplyError::from_io(err).map_or("(not an ApplyError)", ApplyError::code)
}

/// Blocks of transfers between `keys`, each proposed by `leader` (which applies it, as the
/// leader's own state machine would) and returned as log entries from `first_index` on.
struct Chain {
    leader: LedgerApplier,
    nonces: Vec<u64>,
    parent: [u8; 32],
}

impl Chain {
    fn new(genesis: &Genesis, accounts: usize) -> Self {
        Self {
            leader: applier(genesis),
            nonces: vec![0; accounts],
            parent: [0; 32],
        }
    }

    /// The next block: each key pays the next one `amount + i`.
    fn next_block(&mut self, keys: &[Key], amount: u64) -> BlockEntry {
        let txs = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let to = keys[(i + 1) % keys.len()].address;
                let tx = transfer(k, to, self.nonces[i], amount + i as u64);
                self.nonces[i] += 1;
                tx
            })
            .collect();
        let height = self.leader.height() + 1;
        let block = self
            .leader
            .propose(height, self.parent, 1_700_000_000_000 + height, txs)
            .expect("propose");
        self.leader.apply(&block, &[]).expect("leader applies");
        self.parent = [height as u8; 32];
        block
    }
}

#[tokio::test]
async fn signed_transfers_apply_through_the_state_machine_to_the_sequential_roots() {
    let keys: Vec<Key> = (1..=4).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let mut sm = state_machine(&g);
    let mut oracle = ShardedState::from_genesis(&g, 4).expect("oracle");

    let (applied, mem) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, None);
    assert_eq!(mem.log_id(), &None);

    // Index 1: membership, 2: blank, then five blocks, a blank between the third and fourth.
    apply(&mut sm, vec![membership(1, 1, &[1, 2, 3]), blank(1, 2)])
        .await
        .expect("membership and blank");
    let mut index = 2;
    for round in 0..5u64 {
        let block = chain.next_block(&keys, 10 + round);
        assert_eq!(block.height, round + 1);
        let txs: Vec<_> = block
            .txs
            .iter()
            .map(|b| Arc::new(SignedTransaction::decode(b).expect("decode")))
            .collect();
        let out = SequentialExecutor
            .execute_and_commit(&mut oracle, &txs)
            .expect("oracle executes");
        assert_eq!(
            out.state_root.0, block.state_root,
            "height {}",
            block.height
        );

        index += 1;
        let mut entries = vec![normal(2, index, block)];
        if round == 2 {
            index += 1;
            entries.push(blank(2, index));
        }
        apply(&mut sm, entries).await.expect("apply");

        let (applied, mem) = sm.applied_state().await.expect("applied state");
        assert_eq!(applied, Some(log_id(2, index)));
        assert_eq!(mem.log_id(), &Some(log_id(1, 1)));
        assert_eq!(sm.applier().height(), round + 1);
        assert_eq!(sm.applier().root(), oracle.root());
        assert_eq!(sm.applier().root(), chain.leader.root());
    }
    assert_eq!(index, 8);
    for k in &keys {
        assert_eq!(sm.applier().account(&k.address), oracle.account(&k.address));
        assert_eq!(sm.applier().account(&k.address).nonce, 5);
    }
    assert_eq!(oracle.root(), oracle.recompute_root());
}

#[tokio::test]
async fn a_block_with_a_wrong_root_is_refused_with_e_root_mismatch_and_nothing_changes() {
    let keys: Vec<Key> = (1..=3).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let mut sm = state_machine(&g);

    let first = chain.next_block(&keys, 100);
    apply(&mut sm, vec![normal(1, 1, first)])
        .await
        .expect("block 1");
    let root_before = sm.applier().root();
    let accounts_before: Vec<_> = keys
        .iter()
        .map(|k| sm.applier().account(&k.address))
        .collect();
    let applied_before = sm.applied_state().await.expect("applied state");

    let good = chain.next_block(&keys, 200);
    let mut bad = good.clone();
    bad.state_root[0] ^= 0xff;
    let err = apply(&mut sm, vec![normal(1, 2, bad.clone())])
        .await
        .expect_err("a wrong root is refused");
    assert_eq!(code(&err), "E_ROOT_MISMATCH", "{err}");
    assert!(
        err.to_string().starts_with("[E_ROOT_MISMATCH] block 2"),
        "{err}"
    );
    match ApplyError::from_io(&err) {
        Some(ApplyError::RootMismatch {
            height,
            expected,
            got,
        }) => {
            assert_eq!(*height, 2);
            assert_eq!(*expected, StateRoot(bad.state_root));
            assert_eq!(got.0, good.state_root);
        }
        other => panic!("unexpected error {other:?}"),
    }

    // Nothing moved: root, accounts, height, applied log id.
    assert_eq!(sm.applier().root(), root_before);
    assert_eq!(sm.applier().height(), 1);
    let accounts_after: Vec<_> = keys
        .iter()
        .map(|k| sm.applier().account(&k.address))
        .collect();
    assert_eq!(accounts_after, accounts_before);
    assert_eq!(
        sm.applied_state().await.expect("applied state"),
        applied_before
    );

    // The state really is the previous block's: the right block applies on it.
    apply(&mut sm, vec![normal(1, 2, good.clone())])
        .await
        .expect("the right block applies");
    assert_eq!(sm.applier().root().0, good.state_root);
}

#[tokio::test]
async fn undecodable_transactions_and_height_gaps_are_refused_and_nothing_changes() {
    let keys: Vec<Key> = (1..=2).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let mut sm = state_machine(&g);
    let root = sm.applier().root();

    let block = chain.next_block(&keys, 5);
    let mut garbled = block.clone();
    garbled.txs[1].truncate(10);
    let err = apply(&mut sm, vec![normal(1, 1, garbled)])
        .await
        .expect_err("garbled");
    assert_eq!(code(&err), "E_BLOCK_DECODE", "{err}");
    assert!(err.to_string().contains("transaction 1"), "{err}");

    let mut ahead = block.clone();
    ahead.height = 3;
    let err = apply(&mut sm, vec![normal(1, 1, ahead)])
        .await
        .expect_err("gap");
    assert_eq!(code(&err), "E_BLOCK_HEIGHT", "{err}");

    assert_eq!(sm.applier().root(), root);
    assert_eq!(sm.applier().height(), 0);
    assert_eq!(sm.applied_state().await.expect("applied").0, None);

    // A leader cannot propose past its height either.
    let err = chain
        .leader
        .propose(5, [0; 32], 0, vec![])
        .expect_err("propose gap");
    assert_eq!(err.code(), "E_BLOCK_HEIGHT");
}

#[tokio::test]
async fn a_snapshot_installs_into_a_fresh_state_machine_with_the_same_root_and_log_id() {
    let keys: Vec<Key> = (1..=5).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let mut sm = state_machine(&g);

    let mut entries = vec![membership(1, 1, &[1, 2])];
    for i in 0..4 {
        entries.push(normal(1, 2 + i, chain.next_block(&keys, 7)));
    }
    apply(&mut sm, entries).await.expect("apply");
    assert!(sm.get_current_snapshot().await.expect("current").is_none());

    let mut builder = sm.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.expect("build");
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 5)));
    assert_eq!(snap.meta.last_membership.log_id(), &Some(log_id(1, 1)));
    let current = sm
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("kept");
    assert_eq!(current.meta, snap.meta);
    assert_eq!(current.snapshot.get_ref(), snap.snapshot.get_ref());

    let mut fresh = state_machine(&g);
    fresh
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("install");
    assert_eq!(
        fresh.applied_state().await.expect("applied"),
        sm.applied_state().await.expect("applied")
    );
    assert_eq!(fresh.applier().root(), sm.applier().root());
    assert_eq!(fresh.applier().height(), 4);
    assert_eq!(fresh.applier().accounts(), sm.applier().accounts());
    let installed = fresh
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("installed");
    assert_eq!(installed.meta, current.meta);

    // Both go on from there to the same root.
    let next = chain.next_block(&keys, 9);
    apply(&mut sm, vec![normal(2, 6, next.clone())])
        .await
        .expect("sm");
    apply(&mut fresh, vec![normal(2, 6, next.clone())])
        .await
        .expect("fresh");
    assert_eq!(fresh.applier().root().0, next.state_root);
    assert_eq!(sm.applier().root().0, next.state_root);
}

#[tokio::test]
async fn corrupt_or_foreign_snapshots_are_refused_with_e_snapshot_and_nothing_changes() {
    let keys: Vec<Key> = (1..=2).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let mut sm = state_machine(&g);
    apply(&mut sm, vec![normal(1, 1, chain.next_block(&keys, 3))])
        .await
        .expect("apply");
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");

    let mut fresh = state_machine(&g);
    let root = fresh.applier().root();
    let garbage = SnapshotData::new(vec![0xff; 7]);
    let err = fresh
        .install_snapshot(&snap.meta, garbage)
        .await
        .expect_err("garbage");
    assert_eq!(code(&err), "E_SNAPSHOT", "{err}");

    // Truncated: every prefix of the data is refused.
    let data = snap.snapshot.get_ref().clone();
    for cut in [1, data.len() / 2, data.len() - 1] {
        let err = fresh
            .install_snapshot(&snap.meta, SnapshotData::new(data[..cut].to_vec()))
            .await
            .expect_err("truncated");
        assert_eq!(code(&err), "E_SNAPSHOT", "cut {cut}: {err}");
    }

    // Another chain's replica refuses it.
    let other = Genesis {
        chain_id: CHAIN + 1,
        ..g.clone()
    };
    let mut foreign = state_machine(&other);
    let err = foreign
        .install_snapshot(&snap.meta, SnapshotData::new(data.clone()))
        .await
        .expect_err("foreign chain");
    assert_eq!(code(&err), "E_SNAPSHOT", "{err}");

    assert_eq!(fresh.applier().root(), root);
    assert_eq!(fresh.applied_state().await.expect("applied").0, None);
    assert!(
        fresh
            .get_current_snapshot()
            .await
            .expect("current")
            .is_none()
    );
}

#[tokio::test]
async fn a_new_state_machine_reads_the_raft_state_back_from_the_applier() {
    let keys: Vec<Key> = (1..=2).map(key).collect();
    let g = genesis(&keys.iter().collect::<Vec<_>>());
    let mut chain = Chain::new(&g, keys.len());
    let shared = Arc::new(applier(&g));
    let mut sm = BlockStateMachine::new(Arc::clone(&shared)).expect("sm");

    apply(
        &mut sm,
        vec![
            membership(1, 1, &[1]),
            normal(1, 2, chain.next_block(&keys, 1)),
        ],
    )
    .await
    .expect("apply");
    let mut restarted = BlockStateMachine::new(Arc::clone(&shared)).expect("restart");
    assert_eq!(
        restarted.applied_state().await.expect("applied"),
        (Some(log_id(1, 2)), sm.membership())
    );

    // A batch ending with entries that are not blocks stores the Raft state once, at its end.
    apply(
        &mut sm,
        vec![
            normal(1, 3, chain.next_block(&keys, 1)),
            blank(2, 4),
            membership(2, 5, &[1, 2]),
        ],
    )
    .await
    .expect("apply");
    let mut restarted = BlockStateMachine::new(Arc::clone(&shared)).expect("restart");
    let (applied, mem) = restarted.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(2, 5)));
    assert_eq!(mem.log_id(), &Some(log_id(2, 5)));
    assert_eq!(shared.height(), 2);

    // Bytes the state machine cannot read are an error, not a panic.
    shared.save_raft_state(&[0xff, 0xff, 0xff]).expect("save");
    let err = BlockStateMachine::new(Arc::clone(&shared)).expect_err("garbage raft state");
    assert_eq!(err.code(), "E_RAFT_STATE");
}

/// openraft's storage suite with the RocksDB log store and this state machine (the suite
/// applies blank and membership entries, builds, transfers and installs snapshots).
struct LedgerBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, BlockStateMachine<LedgerApplier>, TempDir>
    for LedgerBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, BlockStateMachine<LedgerApplier>), StorageError<TypeConfig>>
    {
        let err =
            |e: io::Error| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(err)?;
        let storage = Storage::open(dir.path(), true)
            .map_err(io::Error::other)
            .map_err(err)?;
        let store = RaftLogStore::new(Arc::new(storage))
            .map_err(io::Error::from)
            .map_err(err)?;
        let keys = [key(1)];
        let sm = BlockStateMachine::new(applier(&genesis(&[&keys[0]])))
            .map_err(io::Error::from)
            .map_err(err)?;
        Ok((dir, store, sm))
    }
}

#[tokio::test]
async fn the_state_machine_passes_openraft_storage_suite() {
    Suite::test_all(LedgerBuilder)
        .await
        .expect("openraft storage suite");
}
