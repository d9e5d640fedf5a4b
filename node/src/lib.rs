//! Tierlink: the data-exchange node of a city, a district or a street office.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod directory;
pub mod exchange;
pub mod federation;
pub mod identity;
pub mod peer;
pub mod policy;
pub mod provision;
pub mod registry;
pub mod runtime;
pub mod sample;
pub mod store;
