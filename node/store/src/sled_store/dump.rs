//! A whole store as one stream of bytes, taken while the node serves, and a store made from one.
//!
//! A dump holds every tree of the database (records and their history and change logs,
//! catalogs, `meta`, and every keyspace: the audit, the directory replica's raft log and state
//! machine, webhooks, cases, cross-checks) at one point: every write to any tree waits while
//! the dump runs ([`Engine::write_turn`]), so none lands in one tree and not another. Reads go
//! on. The wait is the time to read the trees and write them out ([`Dumped::writes_waited`]).
//!
//! Framing, all lengths big-endian: for each tree, `0x01`, the name's length (u32) and the name,
//! then for each key in order `0x01`, the key's length (u32), the key, the value's length (u32)
//! and the value, and `0x00` after its last key; `0x00` after the last tree.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Engine, SledStore, keep_private};
use crate::StoreError;

/// Keys written to a new store in one batch when it is made from a dump.
const LOAD_BATCH: usize = 10_000;

/// What a dump held, and how long writes waited for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dumped {
    /// Trees, keyspaces among them.
    pub trees: u64,
    /// Keys in all trees.
    pub entries: u64,
    /// Bytes of the dump.
    pub bytes: u64,
    /// How long writes to the store waited while it was taken (zero for a dump read back).
    pub writes_waited: Duration,
}

fn write_failed(e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("writing the store's dump: {e}"))
}

fn malformed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Dump(what.to_string())
}

/// Writes a length-prefixed piece.
fn piece(out: &mut dyn Write, bytes: &[u8]) -> Result<u64, StoreError> {
    let len = u32::try_from(bytes.len()).map_err(|_| malformed("a key or value over 4 GiB"))?;
    out.write_all(&len.to_be_bytes()).map_err(write_failed)?;
    out.write_all(bytes).map_err(write_failed)?;
    Ok(4 + bytes.len() as u64)
}

impl SledStore {
    /// Writes the whole store to `out`, every tree at one point: writes wait until it is done.
    /// Give it a buffered writer to a local file: the wait lasts as long as the writing.
    ///
    /// # Errors
    /// [`StoreError::Engine`] when the store cannot be read or `out` written.
    pub fn dump(&self, out: &mut dyn Write) -> Result<Dumped, StoreError> {
        let db = self.engine.db();
        let names = db.tree_names();
        let mut dumped = Dumped::default();
        let _barrier = self
            .engine
            .writes
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let began = Instant::now();
        for name in names {
            let tree = db.open_tree(&name)?;
            out.write_all(&[1]).map_err(write_failed)?;
            dumped.bytes += 1 + piece(out, &name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                out.write_all(&[1]).map_err(write_failed)?;
                dumped.bytes += 1 + piece(out, &k)? + piece(out, &v)?;
                dumped.entries += 1;
            }
            out.write_all(&[0]).map_err(write_failed)?;
            dumped.bytes += 1;
            dumped.trees += 1;
        }
        out.write_all(&[0]).map_err(write_failed)?;
        out.flush().map_err(write_failed)?;
        dumped.bytes += 1;
        dumped.writes_waited = began.elapsed();
        Ok(dumped)
    }

    /// Reads a dump through, checking its framing, and hands each tree's name and keys to
    /// `each` in order.
    ///
    /// # Errors
    /// [`StoreError::Dump`] when the bytes are not a whole dump; `each`'s errors.
    pub fn read_dump(
        input: &mut dyn Read,
        mut each: impl FnMut(&[u8], Vec<u8>, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<Dumped, StoreError> {
        let mut dumped = Dumped::default();
        let tag = |input: &mut dyn Read, bytes: &mut u64| -> Result<bool, StoreError> {
            let mut t = [0u8];
            input
                .read_exact(&mut t)
                .map_err(|e| malformed(format!("it ends early: {e}")))?;
            *bytes += 1;
            match t[0] {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(malformed(format!("tag {other} where 0 or 1 belongs"))),
            }
        };
        let piece = |input: &mut dyn Read, bytes: &mut u64| -> Result<Vec<u8>, StoreError> {
            let mut len = [0u8; 4];
            input
                .read_exact(&mut len)
                .map_err(|e| malformed(format!("it ends early: {e}")))?;
            let len = u32::from_be_bytes(len) as u64;
            let mut v = Vec::new();
            input.take(len).read_to_end(&mut v).map_err(malformed)?;
            if v.len() as u64 != len {
                return Err(malformed("it ends inside a key or value"));
            }
            *bytes += 4 + len;
            Ok(v)
        };
        while tag(input, &mut dumped.bytes)? {
            let name = piece(input, &mut dumped.bytes)?;
            while tag(input, &mut dumped.bytes)? {
                let key = piece(input, &mut dumped.bytes)?;
                let value = piece(input, &mut dumped.bytes)?;
                each(&name, key, value)?;
                dumped.entries += 1;
            }
            dumped.trees += 1;
        }
        Ok(dumped)
    }

    /// Makes a new store in `path` (which must not exist, or be empty) from a dump, as it was
    /// when the dump was taken, format and epoch included: open it with [`SledStore::open`],
    /// which upgrades an older format.
    ///
    /// # Errors
    /// [`StoreError::Dump`] when the bytes are not a whole dump (the store made so far is left
    /// for the caller to remove), [`StoreError::Engine`] when it cannot be written.
    pub fn load(path: &Path, input: &mut dyn Read) -> Result<Dumped, StoreError> {
        if path.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(StoreError::Engine(format!(
                "{} is not empty: a store is made from a dump only in an empty directory",
                path.display()
            )));
        }
        // The default page cache, not sled's 1 GiB: the keys go through once.
        let engine = Engine::new(
            sled::Config::new()
                .path(path)
                .cache_capacity(tierlink_core::config::DEFAULT_STORE_CACHE_MB << 20)
                .flush_every_ms(None)
                .open()?,
        );
        keep_private(path)?;
        let mut current: Option<(Vec<u8>, sled::Tree)> = None;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        let dumped = Self::read_dump(input, |name, key, value| {
            if current.as_ref().is_none_or(|(n, _)| n != name) {
                if let Some((_, tree)) = &current {
                    engine.apply_batch(tree, std::mem::take(&mut batch))?;
                    pending = 0;
                }
                current = Some((name.to_vec(), engine.db().open_tree(name)?));
            }
            batch.insert(key, value);
            pending += 1;
            if pending == LOAD_BATCH {
                let (_, tree) = current.as_ref().expect("a tree is open");
                engine.apply_batch(tree, std::mem::take(&mut batch))?;
                pending = 0;
            }
            Ok(())
        })?;
        if let Some((_, tree)) = &current {
            engine.apply_batch(tree, batch)?;
        }
        engine.flush()?;
        // The trees go before the engine, which closes the database.
        drop(current);
        Ok(dumped)
    }
}

#[cfg(test)]
mod tests;
