//! Cold storage tiers: archive segments of old blocks, zstd-compressed, in a folder.
//!
//! **Tiers.** *Hot*: the RocksDB families, as the crate's module docs describe them. *Cold*:
//! segment files in the archive folder (`storage.archive_dir` of the node), each holding a
//! contiguous range of heights. [`Storage::archive_step`](crate::Storage::archive_step) moves
//! the oldest hot blocks, one segment at a time, once they are `archive_after_blocks` below
//! the head: the stored blocks (which carry their receipts) go to the segment; their rows in
//! the `blocks` and `receipts` families are deleted. The `tx_index` rows stay hot (44 bytes
//! of key and value per transaction) so a transaction's location is still one RocksDB read;
//! [`Storage::block`](crate::Storage::block) and [`Storage::receipt`](crate::Storage::receipt)
//! read RocksDB first, then the segment that covers the height.
//!
//! **Disk bound.** Hot blocks and receipts stay below `archive_after_blocks + 2 x
//! archive_segment_blocks` blocks (a segment leaves once its last block is old enough). What
//! grows with the chain is the cold folder (compressed blocks) and the `tx_index` family
//! (44 bytes per transaction, before RocksDB's overhead).
//!
//! **Segment file** `seg-<first>-<last>.seg` (heights zero-padded to 20 digits), all
//! integers little-endian:
//!
//! ```text
//! frames: one zstd frame per block (the stored block's encoding, see [`crate::block`])
//! index:  count x (u64 height, u64 offset of the frame, u32 frame length), heights ascending
//! footer: u64 offset of the index, u32 count, 8 bytes magic "AGSEG001"
//! ```
//!
//! A read opens the file, reads the footer and the index, and decompresses one frame.
//!
//! **Crash safety.** A segment is written to `<name>.tmp`, fsynced, renamed to its name, and
//! the folder fsynced; only then does one synced RocksDB batch delete the archived range from
//! `blocks` and `receipts` and record the segment (its height range, length and BLAKE3
//! checksum, under `archive/seg/` ++ first height BE in the default family) with the archived
//! height (`archive/to`). A crash before the batch leaves the blocks hot and a file without a
//! record: at open, `*.tmp` files and unrecorded segments are deleted (the next step writes
//! them again). A crash after it leaves the blocks cold only. At open every recorded segment
//! must exist with its recorded length and checksum, or the open fails with
//! `E_ARCHIVE_MISSING` or `E_ARCHIVE_CORRUPT`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::block::StoredBlock;
use crate::{StorageError, StorageResult};

const MAGIC: &[u8; 8] = b"AGSEG001";
const FOOTER: usize = 8 + 4 + 8;
const INDEX_ENTRY: usize = 8 + 8 + 4;
/// zstd level of the frames.
const LEVEL: i32 = 3;

/// A recorded segment: what RocksDB keeps about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    /// First height of the range.
    pub first: u64,
    /// Last height of the range (inclusive).
    pub last: u64,
    /// Blocks in it (fewer than the range where the database had none: a replica that
    /// installed a snapshot).
    pub blocks: u32,
    /// File length in bytes.
    pub bytes: u64,
    /// BLAKE3 of the whole file.
    pub checksum: [u8; 32],
}

impl SegmentRecord {
    pub(crate) fn encode(&self) -> [u8; 52] {
        let mut out = [0u8; 52];
        out[..8].copy_from_slice(&self.last.to_le_bytes());
        out[8..12].copy_from_slice(&self.blocks.to_le_bytes());
        out[12..20].copy_from_slice(&self.bytes.to_le_bytes());
        out[20..].copy_from_slice(&self.checksum);
        out
    }

    pub(crate) fn decode(first: u64, b: &[u8]) -> StorageResult<Self> {
        if b.len() != 52 {
            return Err(StorageError::Corrupt(format!(
                "archive record of {} bytes",
                b.len()
            )));
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(&b[20..]);
        Ok(Self {
            first,
            last: u64_at(0),
            blocks: u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4])),
            bytes: u64_at(12),
            checksum,
        })
    }

    /// The file name of the segment.
    pub fn file_name(&self) -> String {
        format!("seg-{:020}-{:020}.seg", self.first, self.last)
    }
}

/// What opening the archive found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveRecovery {
    /// Recorded segments, verified.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files removed: temporary files and segments without a record (a crash before the
    /// RocksDB batch; their blocks are still hot).
    pub removed: Vec<PathBuf>,
}

/// One archive step's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveRun {
    /// The segment written.
    pub segment: SegmentRecord,
}

/// The cold tier: the archive folder and its recorded segments.
#[derive(Debug)]
pub struct Archive {
    dir: PathBuf,
    /// Recorded (or being recorded) segments by first height.
    segments: RwLock<BTreeMap<u64, SegmentRecord>>,
}

fn io(what: String, e: std::io::Error) -> StorageError {
    StorageError::Archive(format!("{what}: {e}"))
}

fn checksum_of(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((n, *h.finalize().as_bytes()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A writer that hashes and counts what passes through.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Archive {
    /// Opens the archive in `dir` (created if missing) against the segments RocksDB records:
    /// removes temporary and unrecorded files, and verifies each recorded segment's length
    /// and checksum.
    pub fn open(dir: &Path, records: Vec<SegmentRecord>) -> StorageResult<(Self, ArchiveRecovery)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io(format!("cannot create {}", dir.display()), e))?;
        let mut recovery = ArchiveRecovery::default();
        let names: std::collections::BTreeSet<String> =
            records.iter().map(SegmentRecord::file_name).collect();
        let entries =
            std::fs::read_dir(dir).map_err(|e| io(format!("cannot list {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("cannot list {}", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stray = name.ends_with(".tmp")
                || (name.starts_with("seg-") && name.ends_with(".seg") && !names.contains(&name));
            if stray {
                let p = entry.path();
                std::fs::remove_file(&p)
                    .map_err(|e| io(format!("cannot remove {}", p.display()), e))?;
                recovery.removed.push(p);
            }
        }
        if !recovery.removed.is_empty() {
            sync_dir(dir).map_err(|e| io(format!("cannot sync {}", dir.display()), e))?;
        }
        let mut segments = BTreeMap::new();
        for r in records {
            let path = dir.join(r.file_name());
            let (len, sum) = match checksum_of(&path) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StorageError::ArchiveMissing(format!(
                        "archive segment {} (heights {}..={}) is recorded but missing: restore it to {} or restore the database",
                        path.display(),
                        r.first,
                        r.last,
                        dir.display()
                    )));
                }
                Err(e) => return Err(io(format!("cannot read {}", path.display()), e)),
            };
            if len != r.bytes || sum != r.checksum {
                return Err(StorageError::ArchiveCorrupt(format!(
                    "archive segment {} does not match its record ({len} bytes, recorded {})",
                    path.display(),
                    r.bytes
                )));
            }
            recovery.segments += 1;
            recovery.bytes += len;
            segments.insert(r.first, r);
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                segments: RwLock::new(segments),
            },
            recovery,
        ))
    }

    /// The archive folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Recorded segments and their bytes.
    pub fn stats(&self) -> (usize, u64) {
        let s = self.segments.read().unwrap_or_else(|p| p.into_inner());
        (s.len(), s.values().map(|r| r.bytes).sum())
    }

    /// The segment covering `height`, if any.
    fn covering(&self, height: u64) -> Option<SegmentRecord> {
        let s = self.segments.read().unwrap_or_else(|p| p.into_inner());
        s.range(..=height)
            .next_back()
            .map(|(_, r)| *r)
            .filter(|r| r.last >= height)
    }

    /// Writes `blocks` (ascending heights in `first..=last`) as a segment, durably (temp file,
    /// fsync, rename, folder fsync), and makes it readable. The caller records it in RocksDB.
    pub(crate) fn write_segment(
        &self,
        first: u64,
        last: u64,
        blocks: &[(u64, Vec<u8>)],
    ) -> StorageResult<SegmentRecord> {
        let mut record = SegmentRecord {
            first,
            last,
            blocks: blocks.len() as u32,
            bytes: 0,
            checksum: [0; 32],
        };
        let path = self.dir.join(record.file_name());
        let tmp = self.dir.join(format!("{}.tmp", record.file_name()));
        let err = |e: std::io::Error| io(format!("cannot write {}", tmp.display()), e);
        let file = File::create(&tmp).map_err(err)?;
        let mut w = Hashing {
            inner: BufWriter::new(file),
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        let mut index = Vec::with_capacity(blocks.len() * INDEX_ENTRY);
        for (height, encoded) in blocks {
            let frame = zstd::bulk::compress(encoded, LEVEL).map_err(err)?;
            index.extend_from_slice(&height.to_le_bytes());
            index.extend_from_slice(&w.len.to_le_bytes());
            index.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            w.write_all(&frame).map_err(err)?;
        }
        let index_at = w.len;
        w.write_all(&index).map_err(err)?;
        w.write_all(&index_at.to_le_bytes()).map_err(err)?;
        w.write_all(&(blocks.len() as u32).to_le_bytes())
            .map_err(err)?;
        w.write_all(MAGIC).map_err(err)?;
        w.flush().map_err(err)?;
        record.bytes = w.len;
        record.checksum = *w.hasher.finalize().as_bytes();
        let file = w.inner.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(err)?;
        sync_dir(&self.dir).map_err(|e| io(format!("cannot sync {}", self.dir.display()), e))?;
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(first, record);
        Ok(record)
    }

    /// The block at `height` from the segment covering it (`None`: no segment covers it, or
    /// the segment holds no block there).
    pub fn block(&self, height: u64) -> StorageResult<Option<StoredBlock>> {
        let Some(r) = self.covering(height) else {
            return Ok(None);
        };
        let path = self.dir.join(r.file_name());
        let missing = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StorageError::ArchiveMissing(format!(
                    "archive segment {} (heights {}..={}) is missing",
                    path.display(),
                    r.first,
                    r.last
                ))
            } else {
                io(format!("cannot read {}", path.display()), e)
            }
        };
        let corrupt = |what: &str| {
            StorageError::ArchiveCorrupt(format!("archive segment {}: {what}", path.display()))
        };
        let mut f = File::open(&path).map_err(missing)?;
        let len = f.metadata().map_err(missing)?.len();
        if len < FOOTER as u64 {
            return Err(corrupt("shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER];
        f.seek(SeekFrom::Start(len - FOOTER as u64))
            .map_err(missing)?;
        f.read_exact(&mut footer).map_err(missing)?;
        if &footer[12..] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let index_at = u64::from_le_bytes(footer[..8].try_into().unwrap_or([0; 8]));
        let count = u32::from_le_bytes(footer[8..12].try_into().unwrap_or([0; 4])) as u64;
        if index_at + count * INDEX_ENTRY as u64 + FOOTER as u64 != len {
            return Err(corrupt("index does not fit the file"));
        }
        let mut index = vec![0u8; (count as usize) * INDEX_ENTRY];
        f.seek(SeekFrom::Start(index_at)).map_err(missing)?;
        f.read_exact(&mut index).map_err(missing)?;
        let entry = |i: usize| {
            let e = &index[i * INDEX_ENTRY..(i + 1) * INDEX_ENTRY];
            (
                u64::from_le_bytes(e[..8].try_into().unwrap_or([0; 8])),
                u64::from_le_bytes(e[8..16].try_into().unwrap_or([0; 8])),
                u32::from_le_bytes(e[16..].try_into().unwrap_or([0; 4])),
            )
        };
        let (mut lo, mut hi) = (0usize, count as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if entry(mid).0 < height {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == count as usize || entry(lo).0 != height {
            return Ok(None);
        }
        let (_, offset, flen) = entry(lo);
        if offset + flen as u64 > index_at {
            return Err(corrupt("frame past the index"));
        }
        let mut frame = vec![0u8; flen as usize];
        f.seek(SeekFrom::Start(offset)).map_err(missing)?;
        f.read_exact(&mut frame).map_err(missing)?;
        let bytes = zstd::stream::decode_all(frame.as_slice())
            .map_err(|e| corrupt(&format!("frame of height {height}: {e}")))?;
        let block = StoredBlock::decode(&bytes).map_err(|e| corrupt(&e.0))?;
        if block.header.height != height {
            return Err(corrupt(&format!(
                "frame of height {height} holds block {}",
                block.header.height
            )));
        }
        Ok(Some(block))
    }
}
