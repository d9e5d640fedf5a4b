//! Batch files: signed batches written as received, to be checked later and elsewhere with the
//! CA certificate alone (`tierlink verify`), and read only with the key of the node they are
//! sealed to (`tierlink verify --open`).
//!
//! Layout: the 16-byte magic `TIERLINK-BATCH1\n`, then each `SignedBatch` length-delimited.
//! A batch is never larger than a message ([`MAX_MESSAGE_BYTES`]), so a file is read one batch
//! at a time, whatever its size.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use tierlink_proto::v1::SignedBatch;

use super::{
    BatchOpener, BatchVerifier, Expected, StreamCheck, StreamSummary, VerifiedBatch, VerifyError,
};
use crate::limits::{MAX_MESSAGE_BYTES, human_bytes, thousands};

/// The first bytes of every batch file; each batch follows length-delimited (a protobuf varint
/// of its encoded length, then the encoded `SignedBatch`).
pub const MAGIC: &[u8; 16] = b"TIERLINK-BATCH1\n";

/// A batch file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BatchFileError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a batch file or is cut short.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// Writes batches to a new file, replacing any file there once every batch is written and
/// synced: until [`BatchWriter::finish`], they go to `PATH.partial`, which is removed if the
/// writer is dropped unfinished (a read that fails leaves no file that looks like an export).
pub struct BatchWriter {
    path: PathBuf,
    partial: PathBuf,
    out: Option<BufWriter<std::fs::File>>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> BatchFileError + '_ {
    move |source| BatchFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl BatchWriter {
    /// Creates the partial file and writes the magic.
    pub fn create(path: &Path) -> Result<Self, BatchFileError> {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let file = std::fs::File::create(&partial).map_err(io_error(path))?;
        // Made before the first write, so that a failed one removes the partial file.
        let mut writer = Self {
            path: path.to_owned(),
            partial,
            out: Some(BufWriter::new(file)),
        };
        writer.write_bytes(MAGIC)?;
        Ok(writer)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), BatchFileError> {
        let out = self.out.as_mut().expect("open until finished");
        out.write_all(bytes).map_err(io_error(&self.path))
    }

    /// Appends one batch.
    pub fn write(&mut self, batch: &SignedBatch) -> Result<(), BatchFileError> {
        self.write_bytes(&batch.encode_length_delimited_to_vec())
    }

    /// Flushes and syncs the file and puts it in place.
    pub fn finish(mut self) -> Result<(), BatchFileError> {
        let out = self.out.take().expect("open until finished");
        let io = io_error(&self.path);
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(&io)?;
        std::fs::rename(&self.partial, &self.path).map_err(io)
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Reads the batches of a file one at a time, each checked to be no larger than a message could
/// carry before it is read.
pub struct BatchReader {
    path: String,
    input: BufReader<std::fs::File>,
    batches: u32,
    /// Set after an error: nothing after it can be trusted to be a batch.
    failed: bool,
}

impl BatchReader {
    /// Opens a batch file and checks its magic.
    pub fn open(path: &Path) -> Result<Self, BatchFileError> {
        let mut input = BufReader::new(std::fs::File::open(path).map_err(io_error(path))?);
        let mut magic = [0u8; MAGIC.len()];
        let read = input.read_exact(&mut magic);
        if read.is_err() || &magic != MAGIC {
            return Err(BatchFileError::Format {
                path: path.display().to_string(),
                problem:
                    "not a Tierlink batch file (write one with `tierlink records query --out FILE`)"
                        .into(),
            });
        }
        Ok(Self {
            path: path.display().to_string(),
            input,
            batches: 0,
            failed: false,
        })
    }

    fn format(&self, problem: String) -> BatchFileError {
        BatchFileError::Format {
            path: self.path.clone(),
            problem: format!("batch {} {problem}", self.batches),
        }
    }

    /// The next batch's length prefix, or `None` at the end of the file.
    fn length(&mut self) -> Result<Option<u64>, BatchFileError> {
        let mut length = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            match self.input.read_exact(&mut byte) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && shift == 0 => {
                    return Ok(None);
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.format("is cut short: its length is incomplete".into()));
                }
                Err(source) => {
                    return Err(BatchFileError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
            length |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(Some(length));
            }
        }
        Err(self.format("is damaged: its length is not a number".into()))
    }

    fn next_batch(&mut self) -> Result<Option<SignedBatch>, BatchFileError> {
        let Some(length) = self.length()? else {
            return Ok(None);
        };
        if length > MAX_MESSAGE_BYTES as u64 {
            return Err(self.format(format!(
                "claims {} bytes, more than a batch can hold ({}): the file is damaged",
                thousands(length),
                human_bytes(MAX_MESSAGE_BYTES as u64)
            )));
        }
        let mut bytes = vec![0u8; length as usize];
        self.input
            .read_exact(&mut bytes)
            .map_err(|e| self.format(format!("is cut short or damaged: {e}")))?;
        let batch = SignedBatch::decode(bytes.as_slice())
            .map_err(|e| self.format(format!("is cut short or damaged: {e}")))?;
        self.batches += 1;
        Ok(Some(batch))
    }
}

impl Iterator for BatchReader {
    type Item = Result<SignedBatch, BatchFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_batch();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// Reads every batch of a file.
pub fn read_batches(path: &Path) -> Result<Vec<SignedBatch>, BatchFileError> {
    BatchReader::open(path)?.collect()
}

/// A batch file that failed verification.
#[derive(Debug, thiserror::Error)]
pub enum FileVerifyError {
    /// The file could not be read.
    #[error(transparent)]
    File(#[from] BatchFileError),
    /// A batch failed a check.
    #[error("batch {batch} failed verification: {source}")]
    Batch {
        /// Position of the batch in the file, from 0.
        batch: u32,
        /// The failed check.
        source: VerifyError,
    },
    /// An opened batch could not be handed on (e.g. its records not written out).
    #[error("batch {batch}: {message}")]
    Output {
        /// Position of the batch in the file, from 0.
        batch: u32,
        /// What failed.
        message: String,
    },
}

/// Verifies every batch of a file and that they form one complete response, in order, without
/// opening the records: the CA certificate is all it needs.
pub fn verify_file(
    path: &Path,
    verifier: &BatchVerifier,
) -> Result<StreamSummary, FileVerifyError> {
    check_file(path, |check, batch, n| {
        check.verify(verifier, batch).map_err(failed(n))?;
        Ok(())
    })
}

/// As [`verify_file`], and opens every batch with `opener` (the node it is sealed to), handing
/// each to `on_batch` in order.
pub fn open_file(
    path: &Path,
    verifier: &BatchVerifier,
    opener: &BatchOpener,
    mut on_batch: impl FnMut(VerifiedBatch) -> Result<(), String>,
) -> Result<StreamSummary, FileVerifyError> {
    check_file(path, |check, batch, n| {
        let opened = check.open(verifier, opener, batch).map_err(failed(n))?;
        on_batch(opened).map_err(|message| FileVerifyError::Output { batch: n, message })
    })
}

/// The error of batch `n` failing a check.
fn failed(n: u32) -> impl FnOnce(VerifyError) -> FileVerifyError {
    move |source| FileVerifyError::Batch { batch: n, source }
}

/// Takes each batch of a file through `step` (with its position), then checks that the stream
/// they form ended complete.
fn check_file(
    path: &Path,
    mut step: impl FnMut(&mut StreamCheck, &SignedBatch, u32) -> Result<(), FileVerifyError>,
) -> Result<StreamSummary, FileVerifyError> {
    let mut check = StreamCheck::new(Expected::default());
    for batch in BatchReader::open(path)? {
        let batch = batch?;
        let n = check.batches();
        step(&mut check, &batch, n)?;
    }
    let batches = check.batches();
    check.finish().map_err(|source| FileVerifyError::Batch {
        batch: batches,
        source,
    })
}

#[cfg(test)]
mod tests;
