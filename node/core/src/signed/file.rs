//! Batch files: signed batches written as received, to be checked later and elsewhere with the
//! CA certificate alone (`tierlink verify`).
//!
//! Layout: the 16-byte magic `TIERLINK-BATCH1\n`, then each `SignedBatch` length-delimited.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use prost::Message;
use tierlink_proto::v1::SignedBatch;

use super::{BatchVerifier, Expected, StreamCheck, StreamSummary, VerifyError};

const MAGIC: &[u8; 16] = b"TIERLINK-BATCH1\n";

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

/// Writes batches to a new file (replacing any file there) and syncs it.
pub struct BatchWriter {
    path: String,
    out: BufWriter<std::fs::File>,
}

impl BatchWriter {
    /// Creates the file and writes the magic.
    pub fn create(path: &Path) -> Result<Self, BatchFileError> {
        let name = path.display().to_string();
        let io = |source| BatchFileError::Io {
            path: name.clone(),
            source,
        };
        let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
        out.write_all(MAGIC).map_err(io)?;
        Ok(Self { path: name, out })
    }

    /// Appends one batch.
    pub fn write(&mut self, batch: &SignedBatch) -> Result<(), BatchFileError> {
        let io = |source| BatchFileError::Io {
            path: self.path.clone(),
            source,
        };
        self.out
            .write_all(&batch.encode_length_delimited_to_vec())
            .map_err(io)
    }

    /// Flushes and syncs the file.
    pub fn finish(self) -> Result<(), BatchFileError> {
        let path = self.path;
        let io = |source| BatchFileError::Io {
            path: path.clone(),
            source,
        };
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}

/// Reads every batch of a file.
pub fn read_batches(path: &Path) -> Result<Vec<SignedBatch>, BatchFileError> {
    let name = path.display().to_string();
    let io = |source| BatchFileError::Io {
        path: name.clone(),
        source,
    };
    let format = |problem: String| BatchFileError::Format {
        path: name.clone(),
        problem,
    };
    let mut bytes = Vec::new();
    BufReader::new(std::fs::File::open(path).map_err(io)?)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        format(
            "not a Tierlink batch file (write one with `tierlink records query --out FILE`)".into(),
        )
    })?;
    let mut batches = Vec::new();
    while !rest.is_empty() {
        let batch = SignedBatch::decode_length_delimited(&mut rest).map_err(|e| {
            format(format!(
                "batch {} is cut short or damaged: {e}",
                batches.len()
            ))
        })?;
        batches.push(batch);
    }
    Ok(batches)
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
}

/// Verifies every batch of a file and that they form one complete response, in order.
pub fn verify_file(
    path: &Path,
    verifier: &BatchVerifier,
) -> Result<StreamSummary, FileVerifyError> {
    let mut check = StreamCheck::new(Expected::default());
    for batch in read_batches(path)? {
        let n = check.batches();
        check
            .verify(verifier, &batch)
            .map_err(|source| FileVerifyError::Batch { batch: n, source })?;
    }
    let batches = check.batches();
    check.finish().map_err(|source| FileVerifyError::Batch {
        batch: batches,
        source,
    })
}

#[cfg(test)]
mod tests;
