//! Connections open at once to a listener anyone may reach (the gateway): per source address
//! and in all, so that one client cannot hold every socket and threads, nor can all of them
//! together. A connection past either limit is closed as it arrives, before its TLS handshake
//! costs anything; the [`Admitted`] stream it is served on gives its place back when it closes.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::guesses::source;

/// A connection refused because too many are open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Crowded {
    /// Its source address has as many connections open as one source may.
    #[error("{address} has {limit} connections open, as many as one source may: close one first")]
    Source {
        /// The source, as counted (an IPv6 address by its /64).
        address: IpAddr,
        /// Connections one source may hold.
        limit: u32,
    },
    /// The listener has as many connections open as it takes.
    #[error("{limit} connections are open, as many as this listener takes: try again shortly")]
    Total {
        /// Connections the listener takes.
        limit: u32,
    },
}

#[derive(Debug, Default)]
struct Open {
    total: u32,
    by_source: HashMap<IpAddr, u32>,
}

/// The connections open on one listener, within `per_source` and `total`.
#[derive(Clone, Debug)]
pub struct Connections {
    per_source: u32,
    total: u32,
    open: Arc<Mutex<Open>>,
}

impl Connections {
    /// At most `per_source` connections from one source address and `total` from all.
    pub fn new(per_source: u32, total: u32) -> Self {
        Self {
            per_source,
            total,
            open: Arc::default(),
        }
    }

    /// A place for a connection from `ip`, held until the returned permit is dropped.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Crowded> {
        let source = source(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.total {
            return Err(Crowded::Total { limit: self.total });
        }
        let from_source = open.by_source.entry(source).or_default();
        if *from_source >= self.per_source {
            return Err(Crowded::Source {
                address: source,
                limit: self.per_source,
            });
        }
        *from_source += 1;
        open.total += 1;
        Ok(ConnectionPermit {
            source,
            open: self.open.clone(),
        })
    }

    /// Connections open now: from `ip`'s source, and in all.
    pub fn open(&self, ip: IpAddr) -> (u32, u32) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let from = open.by_source.get(&source(ip)).copied().unwrap_or(0);
        (from, open.total)
    }
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    source: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

/// A stream served while it holds its connection's place.
#[derive(Debug)]
pub struct Admitted<S> {
    stream: S,
    _permit: ConnectionPermit,
}

impl<S> Admitted<S> {
    /// `stream`, holding `permit` until it is dropped.
    pub fn new(stream: S, permit: ConnectionPermit) -> Self {
        Self {
            stream,
            _permit: permit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_and_all_sources_hold_at_most_their_limits_and_a_closed_connection_frees_its_place()
    {
        let connections = Connections::new(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = connections.admit(a).unwrap();
        let _second = connections.admit(a).unwrap();
        assert_eq!(
            connections.admit(a).unwrap_err(),
            Crowded::Source {
                address: a,
                limit: 2
            }
        );
        let _third = connections.admit(b).unwrap();
        assert_eq!(
            connections.admit(b).unwrap_err(),
            Crowded::Total { limit: 3 }
        );
        drop(first);
        assert_eq!(connections.open(a), (1, 2));
        connections.admit(a).unwrap();
    }

    #[test]
    fn an_ipv6_host_counts_by_its_slash_64() {
        let connections = Connections::new(1, 10);
        let _held = connections.admit("2001:db8::1".parse().unwrap()).unwrap();
        let err = connections
            .admit("2001:db8::ffff:1".parse().unwrap())
            .unwrap_err();
        assert!(matches!(err, Crowded::Source { .. }), "{err}");
        connections
            .admit("2001:db8:0:1::1".parse().unwrap())
            .unwrap();
    }
}
