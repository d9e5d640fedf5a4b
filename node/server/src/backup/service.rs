//! The `tierlink.v1.Backup` service: a backup taken by the node, asked for by its own
//! administrator (admission lets only the node's own certificate call it).
//!
//! The node copies what goes in into a scratch directory inside its node directory (`.backup-…`,
//! removed when the backup ends, however it ends): its store's dump, taken with writes held
//! back ([`SledStore::dump`]), and its files; hashes them into the manifest; signs it; and
//! streams the archive in chunks of 1 MiB, through the sealing writer when asked.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tierlink_core::config::NodeDir;
use tierlink_core::identity::{NodeKey, RecipientKey};
use tierlink_core::signed::backup::{ARCHIVE_FORMAT, Manifest, Part, SealingWriter, write_archive};
use tierlink_proto::v1::backup_server::{Backup, BackupServer};
use tierlink_proto::v1::{BackupChunk, TakeBackupRequest};
use tierlink_store::{FORMAT_VERSION, SledStore};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{FILE_PART, STORE_PART, node_files};

/// Bytes of archive per streamed chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// The backup service of one node.
pub struct BackupService {
    store: Arc<SledStore>,
    dir: NodeDir,
    key: NodeKey,
}

impl BackupService {
    /// The service over the node's `store`, its directory `dir`, signing with `key`.
    pub fn server(store: Arc<SledStore>, dir: NodeDir, key: NodeKey) -> BackupServer<Self> {
        BackupServer::new(Self { store, dir, key })
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(dir: &NodeDir) -> std::io::Result<Self> {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let path = dir.path(Path::new(&format!(
            ".backup-{}-{nanos}",
            std::process::id()
        )));
        std::fs::create_dir(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends what is written to it as [`BackupChunk`]s.
struct ChunkSender {
    tx: mpsc::Sender<Result<BackupChunk, Status>>,
    buffer: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(BackupChunk {
                data,
                manifest_json: String::new(),
            }))
            .map_err(|_| std::io::Error::other("the command taking the backup stopped reading"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

fn failed(e: impl std::fmt::Display) -> Status {
    Status::internal(format!(
        "the backup failed: {e}; check free disk space in the node directory, and take it again"
    ))
}

/// Takes the backup and streams it to `tx`; returns its manifest.
fn take(
    store: &SledStore,
    dir: &NodeDir,
    key: &NodeKey,
    to: Option<&RecipientKey>,
    with_keys: bool,
    tx: mpsc::Sender<Result<BackupChunk, Status>>,
) -> Result<Manifest, Status> {
    let scratch = Scratch::new(dir).map_err(failed)?;
    let dump_path = scratch.0.join(STORE_PART);
    let mut dump = BufWriter::new(std::fs::File::create(&dump_path).map_err(failed)?);
    let dumped = store.dump(&mut dump).map_err(failed)?;
    drop(dump);
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tracing::info!(
        entries = dumped.entries,
        bytes = dumped.bytes,
        writes_waited_ms = dumped.writes_waited.as_secs_f64() * 1e3,
        "store dumped for a backup"
    );
    let mut sources = vec![(
        Part::of_file(STORE_PART.into(), &dump_path).map_err(failed)?,
        dump_path,
    )];
    for (n, (file, private)) in node_files(dir).into_iter().enumerate() {
        if private && !with_keys {
            continue;
        }
        // A copy, so that the bytes hashed are the bytes sent.
        let copy = scratch.0.join(format!("file-{n}"));
        std::fs::copy(dir.path(&file), &copy).map_err(failed)?;
        let name = format!("{FILE_PART}{}", file.display());
        sources.push((Part::of_file(name, &copy).map_err(failed)?, copy));
    }
    let manifest = Manifest {
        archive_format: ARCHIVE_FORMAT,
        node: dir.code().clone(),
        tierlink: env!("CARGO_PKG_VERSION").into(),
        store_format: FORMAT_VERSION,
        taken_at,
        writes_waited_micros: dumped.writes_waited.as_micros() as u64,
        with_keys,
        parts: sources.iter().map(|(part, _)| part.clone()).collect(),
    };
    let mut parts = |part: &Part, out: &mut dyn Write| {
        let (_, path) = sources
            .iter()
            .find(|(p, _)| p.name == part.name)
            .expect("every part of the manifest has its source");
        std::io::copy(&mut std::fs::File::open(path)?, out)
    };
    let sender = ChunkSender {
        tx,
        buffer: Vec::with_capacity(CHUNK_BYTES),
    };
    let mut sender = match to {
        None => {
            let mut sender = sender;
            write_archive(&mut sender, &manifest, key, &mut parts).map_err(failed)?;
            sender
        }
        Some(to) => {
            let mut sealing = SealingWriter::new(sender, to).map_err(failed)?;
            write_archive(&mut sealing, &manifest, key, &mut parts).map_err(failed)?;
            sealing.finish().map_err(failed)?
        }
    };
    sender.flush().map_err(failed)?;
    Ok(manifest)
}

#[tonic::async_trait]
impl Backup for BackupService {
    type TakeStream = ReceiverStream<Result<BackupChunk, Status>>;

    async fn take(
        &self,
        request: Request<TakeBackupRequest>,
    ) -> Result<Response<Self::TakeStream>, Status> {
        let request = request.into_inner();
        let to = match request.encrypt_to.as_slice() {
            [] => None,
            key => Some(RecipientKey::from_bytes(key).map_err(Status::invalid_argument)?),
        };
        if request.with_keys && to.is_none() {
            return Err(Status::invalid_argument(
                "a backup with the node's private keys must be encrypted: give --encrypt-to with the key to seal it to",
            ));
        }
        let (tx, rx) = mpsc::channel(4);
        let (store, dir, key) = (self.store.clone(), self.dir.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || {
            let last = match take(
                &store,
                &dir,
                &key,
                to.as_ref(),
                request.with_keys,
                tx.clone(),
            ) {
                Ok(manifest) => Ok(BackupChunk {
                    data: Vec::new(),
                    manifest_json: serde_json::to_string(&manifest).expect("a manifest serializes"),
                }),
                Err(status) => {
                    tracing::warn!(error = %status.message(), "a backup failed");
                    Err(status)
                }
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
