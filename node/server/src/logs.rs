//! The node's log as `tierlink serve` writes it, to standard error: lines for people, or JSON
//! lines for a log collector (`[log] format = "json"` in node.toml, or `--log-format json`).
//!
//! A JSON line carries the spans its event happened in with their fields. Every read runs in a
//! span `read` with the node, the request id (the one its signed batch headers and audit entries
//! carry), its kind, catalog, producer and consumer ([`crate::read::ReadService::read`]); every
//! record write in a span `write` with the node, catalog and writer. So an operator who greps one
//! request id in the logs of the asking node, each relay and the producer finds that read's lines
//! on each: `relaying` where it was passed on, `served` where it was produced, `relayed` where a
//! relayed stream ended.

use tierlink_core::config::LogFormat;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// A subscriber writing the events `filter` lets through to `writer`, in `format`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(lines.finish()),
        LogFormat::Json => Box::new(
            lines
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}
