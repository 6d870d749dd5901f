//! The node's RocksDB through `Storage`: a new database's genesis and head, the state read
//! back with its root checked against the head (a tampered state is refused with
//! `E_STORAGE_CORRUPT`), and the durable mempool's write, read and delete.

use std::path::Path;

use aurigraph_ledger::state::{Genesis, ShardedState};
use aurigraph_ledger::tx::{Address, TxHash};
use aurigraph_storage::Storage;

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
fn pending_submissions_are_written_read_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let storage = Storage::open(dir.path(), true).unwrap();
    assert!(storage.pending().unwrap().is_empty());
    let (a, b) = (TxHash([1; 32]), TxHash([2; 32]));
    storage
        .put_pending(&[(a, b"first".as_slice()), (b, b"second".as_slice())])
        .unwrap();
    let mut got = storage.pending().unwrap();
    got.sort();
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
    storage.delete_pending(&[a]).unwrap();
    drop(storage);
    // Survives a reopen.
    let storage = Storage::open(dir.path(), true).unwrap();
    assert_eq!(storage.pending().unwrap(), vec![b"second".to_vec()]);
}
