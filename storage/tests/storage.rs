//! The node's RocksDB through `Storage`: a new database's genesis and head, the state read
//! back with its root checked against the head (a tampered state is refused with
//! `E_STORAGE_CORRUPT`), the durable mempool's write, read and delete, and a state snapshot
//! read from one database and installed in another.

use std::path::Path;

use aurigraph_ledger::state::{Genesis, ShardedState, StateView};
use aurigraph_ledger::tx::{Address, TxHash};
use aurigraph_storage::{DroppedTx, Storage};

const SHARDS: usize = 16;

fn genesis() -> Genesis {
    Genesis {
        chain_id: 7,
        allocations: (1..=20u8)
            .map(|i| (Address([i; 32]), 1_000 * i as u64))
            .collect(),
    }
}

/// A new database in `dir` with the genesis state written.
fn init(dir: &Path) -> ShardedState {
    let storage = Storage::open(dir, true).unwrap();
    let state = ShardedState::from_genesis(&genesis(), SHARDS).unwrap();
    let head = storage.init_genesis([9; 32], &state).unwrap();
    assert_eq!(head.height, 0);
    assert_eq!(head.state_root, state.root());
    state
}

#[test]
fn a_new_database_reads_back_its_genesis_state_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let state = init(dir.path());
    let storage = Storage::open(dir.path(), true).unwrap();
    assert_eq!(storage.genesis().unwrap(), Some(([9; 32], 7)));
    let head = storage.head().unwrap().expect("a head");
    let loaded = storage.load_state(7, SHARDS).unwrap();
    assert_eq!(loaded.root(), state.root());
    assert_eq!(loaded.root(), head.state_root);
    assert_eq!(loaded.len(), state.len());
}

#[test]
fn a_state_that_does_not_match_the_head_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    // Change one balance behind the storage layer's back.
    {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &cfs).unwrap();
        let cf = db.cf_handle("state").expect("the state family");
        let mut account = [0u8; 16];
        account[..8].copy_from_slice(&999_999u64.to_le_bytes());
        db.put_cf(cf, [1u8; 32], account).unwrap();
    }
    let storage = Storage::open(dir.path(), true).unwrap();
    let err = match storage.load_state(7, SHARDS) {
        Ok(_) => panic!("a tampered state was loaded"),
        Err(e) => e,
    };
    assert_eq!(err.code(), "E_STORAGE_CORRUPT");
    assert!(err.to_string().contains("is not the head's"), "{err}");
}

#[test]
fn pending_submissions_come_back_in_arrival_order_and_settle_with_a_dropped_record() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let storage = Storage::open(dir.path(), true).unwrap();
    assert!(storage.pending().unwrap().is_empty());
    // Hash order is c < a < b; arrival order is a, b, c.
    let (a, b, c) = (TxHash([5; 32]), TxHash([9; 32]), TxHash([1; 32]));
    storage
        .put_pending(&[(a, 10, b"first".as_slice()), (b, 11, b"second".as_slice())])
        .unwrap();
    storage
        .put_pending(&[(c, 12, b"third".as_slice())])
        .unwrap();
    let got: Vec<(TxHash, u64, Vec<u8>)> = storage
        .pending()
        .unwrap()
        .into_iter()
        .map(|p| (p.hash, p.seq, p.bytes))
        .collect();
    assert_eq!(
        got,
        vec![
            (a, 10, b"first".to_vec()),
            (b, 11, b"second".to_vec()),
            (c, 12, b"third".to_vec())
        ]
    );
    // `a` was refused after its record (never acknowledged): forgotten; `b` was evicted:
    // recorded as dropped, with its transaction.
    let evicted = DroppedTx {
        code: "E_DROPPED_EVICTED".into(),
        reason: "evicted".into(),
        height: 4,
        tx: String::new(),
    };
    storage
        .settle_pending(&[a], &[(b, evicted.clone())])
        .unwrap();
    assert_eq!(storage.pending_count().unwrap(), 1);
    assert_eq!(storage.dropped(&a).unwrap(), None);
    let got = storage.dropped(&b).unwrap().expect("a dropped record");
    assert_eq!(got.code, "E_DROPPED_EVICTED");
    assert_eq!(got.height, 4);
    assert_eq!(got.tx, hex_of(b"second"));
    drop(storage);
    // Survives a reopen; records below the retention height are pruned.
    let storage = Storage::open(dir.path(), true).unwrap();
    let left: Vec<TxHash> = storage
        .pending()
        .unwrap()
        .into_iter()
        .map(|p| p.hash)
        .collect();
    assert_eq!(left, vec![c]);
    assert_eq!(storage.prune_dropped(4).unwrap(), 0);
    assert!(storage.dropped(&b).unwrap().is_some());
    assert_eq!(storage.prune_dropped(5).unwrap(), 1);
    assert_eq!(storage.dropped(&b).unwrap(), None);
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_layout_1_database_is_upgraded_keeping_its_pending_submissions() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    {
        // Rewrite it as layout 1 wrote it: bare transactions in `mempool`, format 1.
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        let cf = db.cf_handle("mempool").unwrap();
        db.put_cf(cf, [7u8; 32], b"old-bytes").unwrap();
        db.put(b"format", 1u32.to_le_bytes()).unwrap();
    }
    let storage = Storage::open(dir.path(), true).unwrap();
    let p = storage.pending().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].hash, p[0].bytes.as_slice()),
        (TxHash([7; 32]), b"old-bytes".as_slice())
    );
    drop(storage);
    // Upgraded once: reopening reads layout 2.
    let storage = Storage::open(dir.path(), true).unwrap();
    assert_eq!(storage.pending().unwrap().len(), 1);
}

#[test]
fn a_database_without_the_raft_families_opens_read_only_and_gains_them_read_write() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    {
        // Drop the `raft_*` families, as a database written before they existed lacks them.
        let opts = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let mut db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        for name in [
            aurigraph_storage::CF_RAFT_LOG,
            aurigraph_storage::CF_RAFT_META,
        ] {
            db.drop_cf(name).unwrap();
        }
    }
    let storage = Storage::open_read_only(dir.path()).unwrap();
    assert_eq!(storage.head().unwrap().map(|h| h.height), Some(0));
    assert!(
        storage
            .db()
            .cf_handle(aurigraph_storage::CF_RAFT_LOG)
            .is_none()
    );
    drop(storage);

    let storage = Storage::open(dir.path(), true).unwrap();
    for name in [
        aurigraph_storage::CF_RAFT_LOG,
        aurigraph_storage::CF_RAFT_META,
    ] {
        assert!(storage.db().cf_handle(name).is_some(), "{name}");
    }
}

#[test]
fn a_state_snapshot_installed_elsewhere_replaces_the_whole_state_and_head() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    init(a.path());
    init(b.path());
    let source = Storage::open(a.path(), true).unwrap();
    let (head, accounts) = source.state_snapshot().unwrap();
    assert_eq!(accounts.len(), 20);
    assert!(
        accounts.windows(2).all(|w| w[0].0 < w[1].0),
        "address order"
    );

    // The replica's state differs (an extra account): after the install it is the snapshot's.
    let target = Storage::open(b.path(), true).unwrap();
    let mut moved = head;
    moved.height = 42;
    let mut fewer = accounts.clone();
    let gone = fewer.pop().unwrap().0;
    let root = {
        let mut s = ShardedState::new(7, SHARDS).unwrap();
        s.apply(&fewer)
    };
    moved.state_root = root;
    target.install_state(&moved, &fewer, b"raft-state").unwrap();
    drop(target);
    let target = Storage::open(b.path(), true).unwrap();
    assert_eq!(target.head().unwrap(), Some(moved));
    assert_eq!(
        target.raft_state().unwrap().as_deref(),
        Some(&b"raft-state"[..])
    );
    let loaded = target.load_state(7, SHARDS).unwrap();
    assert_eq!(loaded.root(), root);
    assert_eq!(loaded.len(), 19);
    assert_eq!(loaded.account(&gone), Default::default());
    // Nothing below the head was ever written here: pruning finds nothing to delete.
    assert_eq!(target.prune_blocks(42).unwrap(), 0);
}

/// A block written without waiting for the disk is readable at once, the same as a synced
/// one, and after `sync_wal` it is there after a reopen with its head and state writes.
#[test]
fn a_block_written_before_its_sync_reads_back_and_survives_a_reopen() {
    use aurigraph_ledger::executor::{Receipt, TxStatus};
    use aurigraph_ledger::state::Account;
    use aurigraph_ledger::tx::{Operation, Transaction, keypair_from_seed};
    use aurigraph_storage::BlockWrite;
    use aurigraph_storage::block::{BlockHeader, StoredBlock, tx_root};

    let dir = tempfile::tempdir().unwrap();
    let mut state = init(dir.path());
    let storage = Storage::open(dir.path(), true).unwrap();
    let parent = storage.head().unwrap().expect("genesis head").hash;
    let (sk, sender) = keypair_from_seed([5; 32]);
    let tx = Transaction {
        chain_id: 7,
        sender,
        nonce: 0,
        fee: 1,
        op: Operation::Transfer {
            to: Address([1; 32]),
            amount: 1,
        },
    }
    .sign(&sk);
    let writes = vec![(
        Address([1; 32]),
        Account {
            balance: 1_001,
            nonce: 0,
        },
    )];
    let root = state.apply(&writes);
    let block = StoredBlock {
        header: BlockHeader {
            height: 1,
            parent,
            state_root: root,
            timestamp_ms: 1_700_000_000_000,
            tx_root: tx_root([tx.hash()]),
        },
        receipts: vec![Receipt {
            tx_hash: tx.hash(),
            status: TxStatus::Success,
            fee_charged: 1,
        }],
        txs: vec![tx],
    };
    let head = storage
        .commit_block_unsynced(&BlockWrite {
            block: &block,
            writes: &writes,
            telemetry: None,
            raft_state: None,
        })
        .unwrap();
    assert_eq!(storage.head().unwrap(), Some(head));
    assert_eq!(storage.block(1).unwrap().as_ref(), Some(&block));
    storage.sync_wal().unwrap();
    drop(storage);
    let storage = Storage::open(dir.path(), true).unwrap();
    assert_eq!(storage.head().unwrap(), Some(head));
    assert_eq!(storage.block(1).unwrap().as_ref(), Some(&block));
    assert_eq!(storage.load_state(7, SHARDS).unwrap().root(), root);
}
