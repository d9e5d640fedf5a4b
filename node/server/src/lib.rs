//! A running Tierlink node: the services it offers over mutual TLS and the runtime that serves
//! them on one listener.
//!
//! # Layout
//! - [`admission`]: who is calling, resolved once per call for every service (a tower layer).
//! - [`limits`]: what callers may hold on the node: reads open per caller and in all, the
//!   workers that produce batches, the stall limit, and request sizes by method.
//! - [`read`]: the read service, the one path every record leaves by, whatever the transport.
//! - [`exchange`]: the producing side of reads ([`exchange::produce`]) and the
//!   `tierlink.v1.Exchange` service ([`exchange::server`]), an adapter over [`read`].
//! - [`directory`]: this node's replica of the federation directory (openraft): log store, state
//!   machine, network, and the `Directory` and `Federation` services.
//! - [`audit`]: the `tierlink.v1.Audit` service over the node's audit log.
//! - [`backup`]: the `tierlink.v1.Backup` service (a signed archive of the store and the node
//!   directory, taken while the node serves), and restoring a stopped node from one.
//! - [`gateway`]: the REST/JSON gateway over HTTPS, an adapter over the same services for
//!   systems that present API tokens instead of certificates.
//! - [`cases`]: cases that move between tiers: moves made here, chains delivered to every
//!   party and checked on arrival, deadlines on the working-day calendar, figures.
//! - [`webhooks`]: change feeds delivered to HTTP receivers, signed as Standard Webhooks, and
//!   the `tierlink.v1.Webhooks` service that manages them.
//! - [`crosscheck`]: cross-checks of two nodes' catalogs by private set intersection, the
//!   `tierlink.v1.CrossCheck` service, and the runs each node keeps.
//! - [`logs`]: the node's log as text or JSON lines, with the spans a read's request id is in.
//! - [`metrics`]: the node's metrics for Prometheus, counted where things happen and read from
//!   the node's state when scraped, served at `/metrics` by the gateway.
//! - [`retention`]: the history retention, removing superseded versions older than the node
//!   keeps them, audited.
//! - [`runtime`]: opening a node's directory and serving every service.
//!
//! # Direction
//! `tierlink-node` depends on `tierlink-core`, `tierlink-store` and `tierlink-client` (relays and
//! the raft network reach other nodes through it). Only the sandbox and the command depend on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod audit;
pub mod backup;
pub mod cases;
pub mod crosscheck;
pub mod directory;
pub mod exchange;
pub mod gateway;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod read;
pub mod retention;
pub mod runtime;
pub mod webhooks;
