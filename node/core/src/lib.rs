//! Tierlink's foundations: what a node is and what it exchanges, with no server and no storage
//! engine, so the client, the store and the node all build on the same definitions.
//!
//! # Layout
//! - [`identity`]: division codes, tiers, certificates, the node's signing key, principals.
//! - [`catalog`]: the national resource catalog model, its rules, and record checks.
//! - [`policy`]: field-level secrecy: roles, grants, access requests, the decision, redaction.
//! - [`directory`]: the federation directory's state and its rules (replicated by the node).
//! - [`import`]: bulk import of exported files: decoding, CSV and JSON lines, mapping files,
//!   checking into rows to write and rows rejected.
//! - [`cases`]: cases that move between tiers: moves, the tier rules, signed chains, figures.
//! - [`members`]: what the exchange asks of the directory, as a trait the node implements.
//! - [`signed`]: the signed formats: batches, requesters and batch files.
//! - [`crosscheck`]: comparing two units' catalogs by private set intersection, each side
//!   learning its own mismatches and nothing of the other's unmatched records.
//! - [`limits`]: the sizes of messages, batches and records, and how they nest.
//! - [`calendar`]: the official working-day calendar (holidays, 调休) and deadlines counted in
//!   working days.
//! - [`config`], [`provision`]: a node's directory on disk, and making one.
//! - [`read`]: what a read of records asks, the one shape for queries and histories.
//! - [`wire`]: the domain types as the contract carries them (`From` impls, by service).
//!
//! # Direction
//! `tierlink-core` depends on `tierlink-proto` alone among the workspace's crates. Above it:
//! `tierlink-store` and `tierlink-client` → `tierlink-node` → `tierlink-sandbox` → `tierlink`
//! (the command). Nothing here may name tonic's server, sled or openraft.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calendar;
pub mod cases;
pub mod catalog;
pub mod config;
pub mod crosscheck;
pub mod directory;
pub mod identity;
pub mod import;
pub mod limits;
pub mod members;
pub mod policy;
pub mod provision;
pub mod read;
pub mod signed;
pub mod wire;
