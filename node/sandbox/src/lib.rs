//! A Tierlink federation on loopback and the data to fill it: what `tierlink demo`, the
//! end-to-end tests and the benchmarks run on.
//!
//! # Layout
//! - [`city`]: a whole city — the city in its own process, its districts and streets in this
//!   one — formed through join and approve, and measured.
//! - [`crosscheck`]: a street's residents and a district's changed copy, and a checker role
//!   granted both, for cross-checks.
//! - [`federation`]: a CA and a city, district and street nodes in one directory, served on
//!   127.0.0.1 ports the OS picks and linked by the federation directory.
//! - [`sample`]: deterministic residents, buildings, small catalogs and a three-tier policy.
//! - [`postgres`]: a PostgreSQL server of its own on loopback, for the connector.
//!
//! # Direction
//! Builds on `tierlink-node` (it runs nodes), `tierlink-client`, `tierlink-store` and
//! `tierlink-core`; only the command (`tierlink demo`), tests and benchmarks depend on it, never
//! the node.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod city;
pub mod crosscheck;
pub mod faults;
pub mod federation;
pub mod postgres;
pub mod sample;
