//! The cache index: cache key → the layer stack a step produced, in a redb
//! database at `$ROOT/cache.redb`.
//!
//! redb lets one process open a database file at a time, while several
//! `strata build`s share a root. So the database is never kept open: each
//! operation takes an exclusive `flock` on `locks/index` (polling with
//! backoff, giving up after [`LOCK_WAIT`]), opens the file, runs one short
//! transaction and closes it. Transactions are tiny (one record), so the
//! lock is held for milliseconds.
//!
//! The index is a cache of what the snapshot metadata (`s-….json`) says:
//! a deleted database is recreated from it, and one redb cannot read
//! (corrupt, or panicking on a damaged page) is thrown away and rebuilt the
//! same way. A build never fails because of the index.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::cache_error::{CacheError, io_err};
use crate::locks::{lock, lock_file};
use crate::snapshots::{Hold, LayerRef, SnapshotId, Snapshots, now_secs};

/// How long an operation waits for other processes' index transactions.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// redb's page cache: the database is small and opened per operation.
const CACHE_BYTES: usize = 4 << 20;

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

/// What a cache key resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The whole layer stack, bottom first.
    pub layers: Vec<LayerRef>,
    /// When it was recorded, seconds since the Unix epoch.
    pub created: u64,
    /// When a build last reused it, seconds since the Unix epoch.
    pub last_used: u64,
}

impl CacheRecord {
    /// A record of `layers` created and used now.
    pub fn new(layers: Vec<LayerRef>) -> CacheRecord {
        let now = now_secs();
        CacheRecord {
            layers,
            created: now,
            last_used: now,
        }
    }
}

/// The cache index of a root.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    root: PathBuf,
    db_path: PathBuf,
    snapshots: Snapshots,
}

/// Why a transaction failed: redb's error, or a panic inside redb.
enum TxError {
    Redb(redb::Error),
    Panicked,
}

impl<E: Into<redb::Error>> From<E> for TxError {
    fn from(e: E) -> Self {
        TxError::Redb(e.into())
    }
}

type Tx<T> = Result<T, TxError>;

/// A key and its record serialized.
type EncodedRecord = ([u8; 32], Vec<u8>);

impl CacheIndex {
    /// The index of `root` (`$STRATA_ROOT`); nothing is opened yet.
    pub fn open(root: impl Into<PathBuf>) -> Result<CacheIndex, CacheError> {
        let root = root.into();
        let snapshots = Snapshots::open(root.join("snapshots"))?;
        Ok(CacheIndex {
            db_path: root.join("cache.redb"),
            root,
            snapshots,
        })
    }

    /// The snapshots the records name.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// The record of `key`, or `None` when there is none or one of its
    /// layers is gone (a miss).
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<CacheRecord>, CacheError> {
        let record = self.with_db(|db| read_record(db, key))?;
        Ok(record.filter(|r| r.layers.iter().all(|l| self.snapshots.exists(l.id()))))
    }

    /// The records of `keys` that exist and whose layers are all there, read
    /// in one transaction (a build asks for all its steps at once).
    pub fn get_many(
        &self,
        keys: &[[u8; 32]],
    ) -> Result<std::collections::HashMap<[u8; 32], CacheRecord>, CacheError> {
        let found = self.with_db(|db| {
            keys.iter()
                .map(|k| Ok(read_record(db, k)?.map(|r| (*k, r))))
                .collect::<Tx<Vec<_>>>()
        })?;
        Ok(found
            .into_iter()
            .flatten()
            .filter(|(_, r)| r.layers.iter().all(|l| self.snapshots.exists(l.id())))
            .collect())
    }

    /// A cache hit ready to use: `key`'s record with a hold on each of its
    /// layers (keep them while the build reads the folders), after marking
    /// it used. `None` is a miss, including when a layer was pruned between
    /// the lookup and the hold.
    pub fn lookup(&self, key: &[u8; 32]) -> Result<Option<(CacheRecord, Vec<Hold>)>, CacheError> {
        let Some(record) = self.get(key)? else {
            return Ok(None);
        };
        let Some(holds) = self.snapshots.hold_layers(&record.layers)? else {
            return Ok(None);
        };
        self.touch(key)?;
        Ok(Some((record, holds)))
    }

    /// Records `key`. Every snapshot `record` names must be committed.
    pub fn put(&self, key: &[u8; 32], record: &CacheRecord) -> Result<(), CacheError> {
        let bytes = encode(record);
        self.with_db(|db| {
            let tx = db.begin_write()?;
            tx.open_table(RECORDS)?
                .insert(key.as_slice(), bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Marks `key` as used now (for least-recently-used pruning).
    pub fn touch(&self, key: &[u8; 32]) -> Result<(), CacheError> {
        let now = now_secs();
        self.with_db(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(RECORDS)?;
                let record = table.get(key.as_slice())?.and_then(|v| decode(v.value()));
                if let Some(mut record) = record {
                    record.last_used = now;
                    table.insert(key.as_slice(), encode(&record).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Marks every key of `keys` as used now, in one transaction (a build
    /// does this once for all its cache hits).
    pub fn touch_all(&self, keys: &[[u8; 32]]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        self.with_db(|db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(RECORDS)?;
                for key in keys {
                    let record = table.get(key.as_slice())?.and_then(|v| decode(v.value()));
                    if let Some(mut record) = record {
                        record.last_used = now;
                        table.insert(key.as_slice(), encode(&record).as_slice())?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Forgets `key`; false when it had no record.
    pub fn remove(&self, key: &[u8; 32]) -> Result<bool, CacheError> {
        self.with_db(|db| {
            let tx = db.begin_write()?;
            let removed = tx.open_table(RECORDS)?.remove(key.as_slice())?.is_some();
            tx.commit()?;
            Ok(removed)
        })
    }

    /// Every record, sorted by key (unreadable values are skipped).
    pub fn iter(&self) -> Result<Vec<([u8; 32], CacheRecord)>, CacheError> {
        self.with_db(read_all)
    }

    /// Adds a record for every committed snapshot whose key has none, from
    /// its metadata (its parents plus itself); returns how many were added.
    pub fn rebuild_from_snapshots(&self) -> Result<usize, CacheError> {
        let found = self.records_from_metadata()?;
        self.with_db(|db| merge(db, &found))
    }

    /// Records as the snapshot metadata describes them.
    fn records_from_metadata(&self) -> Result<Vec<EncodedRecord>, CacheError> {
        let mut out = Vec::new();
        for id in self.snapshots.list()? {
            if !id.is_step() {
                continue;
            }
            let Ok(meta) = self.snapshots.meta(&id) else {
                continue;
            };
            let Some(key) = hex::decode(&meta.key)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
            else {
                continue;
            };
            if SnapshotId::for_key(&key) != id {
                continue;
            }
            let mut layers = meta.parents;
            layers.push(LayerRef::Step { id });
            let record = CacheRecord {
                layers,
                created: meta.created,
                last_used: meta.created,
            };
            out.push((key, encode(&record)));
        }
        Ok(out)
    }

    /// Runs `f` on the open database under the index lock. A database that
    /// is missing is rebuilt from metadata first; one that fails to open or
    /// to read (other than being busy) is deleted and rebuilt, then `f`
    /// runs again.
    fn with_db<T>(&self, f: impl Fn(&Database) -> Tx<T>) -> Result<T, CacheError> {
        let _lock = self.lock()?;
        let started = Instant::now();
        let mut rebuilt = false;
        loop {
            let fresh = fs::metadata(&self.db_path).map_or(true, |m| m.len() == 0);
            let db = match guarded(|| {
                Ok(redb::Builder::new()
                    .set_cache_size(CACHE_BYTES)
                    .create(&self.db_path)?)
            }) {
                Ok(db) => db,
                // Only a process not using the index lock (an older strata)
                // can hold the file; wait for it rather than discard it.
                Err(TxError::Redb(redb::Error::DatabaseAlreadyOpen))
                    if started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) if !rebuilt => {
                    self.discard(e)?;
                    rebuilt = true;
                    continue;
                }
                Err(e) => return Err(self.index_err(e)),
            };
            if fresh {
                let found = self.records_from_metadata()?;
                if let Err(e) = guarded(|| merge(&db, &found)) {
                    return Err(self.index_err(e));
                }
            }
            match guarded(|| f(&db)) {
                Ok(v) => return Ok(v),
                Err(e) if !rebuilt => {
                    drop(db);
                    self.discard(e)?;
                    rebuilt = true;
                }
                Err(e) => return Err(self.index_err(e)),
            }
        }
    }

    /// Deletes an unreadable database so the next open rebuilds it.
    fn discard(&self, _why: TxError) -> Result<(), CacheError> {
        match fs::remove_file(&self.db_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.db_path)(e)),
        }
    }

    fn index_err(&self, e: TxError) -> CacheError {
        CacheError::Index {
            path: self.db_path.clone(),
            message: match e {
                TxError::Redb(e) => e.to_string(),
                TxError::Panicked => "redb panicked reading the database".to_string(),
            },
        }
    }

    /// The exclusive index lock, polled with backoff up to [`LOCK_WAIT`].
    fn lock(&self) -> Result<fs::File, CacheError> {
        let (file, path) = lock_file(&self.root, "index")?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        while !lock(&file, &path, FlockOperation::NonBlockingLockExclusive)? {
            if started.elapsed() > LOCK_WAIT {
                return Err(CacheError::Busy(self.db_path.clone()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Ok(file)
    }

    /// The database file (for doctor and tests).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }
}

/// Runs `f`, turning a panic inside redb into an error.
fn guarded<T>(f: impl FnOnce() -> Tx<T>) -> Tx<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(TxError::Panicked))
}

fn encode(record: &CacheRecord) -> Vec<u8> {
    // A struct of strings and numbers always serializes.
    serde_json::to_vec(record).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<CacheRecord> {
    serde_json::from_slice(bytes).ok()
}

fn read_record(db: &Database, key: &[u8; 32]) -> Tx<Option<CacheRecord>> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(RECORDS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(key.as_slice())?.and_then(|v| decode(v.value())))
}

fn read_all(db: &Database) -> Tx<Vec<([u8; 32], CacheRecord)>> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(RECORDS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if let (Ok(key), Some(record)) = (<[u8; 32]>::try_from(k.value()), decode(v.value())) {
            out.push((key, record));
        }
    }
    Ok(out)
}

/// Inserts the `found` records whose keys have none; returns how many.
fn merge(db: &Database, found: &[EncodedRecord]) -> Tx<usize> {
    let tx = db.begin_write()?;
    let mut added = 0;
    {
        let mut table = tx.open_table(RECORDS)?;
        for (key, bytes) in found {
            let present = table
                .get(key.as_slice())?
                .is_some_and(|v| decode(v.value()).is_some());
            if !present {
                table.insert(key.as_slice(), bytes.as_slice())?;
                added += 1;
            }
        }
    }
    tx.commit()?;
    Ok(added)
}
