//! Storage tiers: old blocks move to zstd archive segments and still read back (blocks,
//! receipts, transaction locations) equal to what RocksDB held, across a reopen; what a crash
//! leaves behind (a torn temporary file, a segment without its RocksDB record) is removed at
//! open; a recorded segment that is missing or altered refuses the open with a clear code.

use std::path::Path;

use aurigraph_ledger::executor::{Receipt, TxStatus};
use aurigraph_ledger::state::StateRoot;
use aurigraph_ledger::tx::{Operation, Transaction, keypair_from_seed};
use aurigraph_storage::block::{BlockHeader, StoredBlock, tx_root};
use aurigraph_storage::{BlockWrite, Storage, TxLocation};

/// Commits blocks 1..=n, each with three transfers (receipts alternate in status and fee).
fn commit_blocks(storage: &Storage, n: u64) -> Vec<StoredBlock> {
    let (sk, sender) = keypair_from_seed([3; 32]);
    let (_, to) = keypair_from_seed([4; 32]);
    let mut out = Vec::new();
    let mut parent = [0u8; 32];
    for height in 1..=n {
        let txs: Vec<_> = (0..3)
            .map(|i| {
                Transaction {
                    chain_id: 7,
                    sender,
                    nonce: height * 3 + i,
                    fee: 10 + i,
                    op: Operation::Transfer { to, amount: height },
                }
                .sign(&sk)
            })
            .collect();
        let receipts = txs
            .iter()
            .enumerate()
            .map(|(i, t)| Receipt {
                tx_hash: t.hash(),
                status: if i == 1 {
                    TxStatus::InsufficientFunds
                } else {
                    TxStatus::Success
                },
                fee_charged: 10 + i as u64,
            })
            .collect();
        let block = StoredBlock {
            header: BlockHeader {
                height,
                parent,
                state_root: StateRoot([height as u8; 32]),
                timestamp_ms: 1_700_000_000_000 + height,
                tx_root: tx_root(txs.iter().map(|t| t.hash())),
            },
            txs,
            receipts,
        };
        storage
            .commit_block(&BlockWrite {
                block: &block,
                writes: &[],
                telemetry: None,
                raft_state: None,
            })
            .unwrap();
        parent = block.hash();
        out.push(block);
    }
    out
}

/// Every block, receipt and transaction location reads back as committed.
fn assert_all_readable(storage: &Storage, blocks: &[StoredBlock]) {
    for b in blocks {
        let h = b.header.height;
        assert_eq!(storage.block(h).unwrap().as_ref(), Some(b), "block {h}");
        for (i, (tx, r)) in b.txs.iter().zip(&b.receipts).enumerate() {
            let loc = storage.tx_location(&tx.hash()).unwrap();
            let want = TxLocation {
                height: h,
                index: i as u32,
            };
            assert_eq!(loc, Some(want), "tx {i} of block {h}");
            assert_eq!(
                storage.receipt(want, tx.hash()).unwrap().as_ref(),
                Some(r),
                "receipt {i} of block {h}"
            );
        }
    }
}

/// Archives every whole segment of `seg` heights below `below`; how many steps wrote one.
fn archive_all(storage: &Storage, below: u64, seg: u64) -> usize {
    let mut n = 0;
    while storage.archive_step(below, seg).unwrap().is_some() {
        n += 1;
    }
    n
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn old_blocks_move_to_segments_and_read_back_equal_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cold = dir.path().join("archive");
    let blocks;
    {
        let storage = Storage::open(&db, true).unwrap();
        blocks = commit_blocks(&storage, 23);
        storage.open_archive(&cold).unwrap();
        // Heights 1..=20 are old enough (below 21): four segments of 5; 21..=23 stay hot.
        assert_eq!(archive_all(&storage, 21, 5), 4);
        assert_eq!(storage.archived_to().unwrap(), 20);
        assert_eq!(storage.hot_block_count().unwrap(), 3);
        assert_eq!(storage.archive().unwrap().stats().0, 4);
        assert_eq!(segment_files(&cold).len(), 4);
        assert_all_readable(&storage, &blocks);
        // Not a whole segment old enough yet: nothing moves.
        assert!(storage.archive_step(24, 5).unwrap().is_none());
    }
    let storage = Storage::open(&db, true).unwrap();
    // Before the archive opens, archived heights are not answered.
    assert_eq!(storage.block(3).unwrap(), None);
    let r = storage.open_archive(&cold).unwrap();
    assert_eq!(r.segments, 4);
    assert!(r.removed.is_empty());
    assert_all_readable(&storage, &blocks);
    assert_eq!(storage.block(24).unwrap(), None);
}

#[test]
fn a_torn_temp_segment_and_an_unrecorded_segment_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cold = dir.path().join("archive");
    let storage = Storage::open(&db, true).unwrap();
    let blocks = commit_blocks(&storage, 12);
    storage.open_archive(&cold).unwrap();
    assert_eq!(archive_all(&storage, 6, 5), 1);
    let recorded = segment_files(&cold);
    drop(storage);
    // A crash while writing the next segment (torn temporary file), and one after its rename
    // but before the RocksDB batch (a whole segment file without a record).
    std::fs::write(
        cold.join("seg-00000000000000000006-00000000000000000010.seg.tmp"),
        b"torn",
    )
    .unwrap();
    std::fs::copy(
        cold.join(&recorded[0]),
        cold.join("seg-00000000000000000006-00000000000000000010.seg"),
    )
    .unwrap();
    let storage = Storage::open(&db, true).unwrap();
    let r = storage.open_archive(&cold).unwrap();
    assert_eq!(r.segments, 1);
    assert_eq!(r.removed.len(), 2, "{:?}", r.removed);
    assert_eq!(segment_files(&cold), recorded);
    // The unrecorded range is still hot, and archives again.
    assert_all_readable(&storage, &blocks);
    assert_eq!(archive_all(&storage, 11, 5), 1);
    assert_eq!(storage.archived_to().unwrap(), 10);
    assert_all_readable(&storage, &blocks);
}

#[test]
fn a_missing_or_altered_recorded_segment_refuses_the_open_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cold = dir.path().join("archive");
    {
        let storage = Storage::open(&db, true).unwrap();
        commit_blocks(&storage, 10);
        storage.open_archive(&cold).unwrap();
        assert_eq!(archive_all(&storage, 11, 5), 2);
    }
    let files = segment_files(&cold);
    let first = cold.join(&files[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let storage = Storage::open(&db, true).unwrap();
    let err = storage.open_archive(&cold).unwrap_err();
    assert_eq!(err.code(), "E_ARCHIVE_CORRUPT", "{err}");
    drop(storage);
    std::fs::remove_file(&first).unwrap();
    let storage = Storage::open(&db, true).unwrap();
    let err = storage.open_archive(&cold).unwrap_err();
    assert_eq!(err.code(), "E_ARCHIVE_MISSING", "{err}");
    assert!(err.to_string().contains(&files[0]), "{err}");
}

#[test]
fn segments_compress_the_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("db"), true).unwrap();
    let blocks = commit_blocks(&storage, 50);
    let raw: usize = blocks.iter().map(|b| b.encode().len()).sum();
    storage.open_archive(&dir.path().join("archive")).unwrap();
    assert_eq!(archive_all(&storage, 51, 50), 1);
    let (_, bytes) = storage.archive().unwrap().stats();
    assert!(bytes > 0 && (bytes as usize) < raw, "{bytes} of {raw}");
}
