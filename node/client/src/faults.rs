//! A partition fault hook: the peers a node may not talk to, set from outside its process.
//!
//! When the environment variable [`FAULTS_ENV`] names a file, the node reads it every
//! [`POLL`] and treats every peer it lists as unreachable: its outbound calls to them fail as a
//! connection would, and their calls in are answered `UNAVAILABLE`. Without the variable nothing
//! is read and nothing is blocked. Fault tests build partitions with it while every node stays on
//! 127.0.0.1, in the manner of Jepsen's partition nemesis (which drops packets with iptables).
//!
//! The file holds one peer a line, its node code and endpoint separated by whitespace
//! (`420502 https://127.0.0.1:4431`); blank lines and lines starting with `#` are skipped. A
//! missing or empty file blocks no one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tierlink_core::identity::NodeCode;

/// The environment variable naming the faults file.
pub const FAULTS_ENV: &str = "TIERLINK_FAULTS";

/// How often the faults file is read.
pub const POLL: Duration = Duration::from_millis(100);

/// The peers blocked now, by code and by endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockedPeers {
    codes: BTreeSet<String>,
    endpoints: BTreeSet<String>,
}

impl BlockedPeers {
    /// The peers listed in the text of a faults file (see the module's docs).
    pub fn parse(text: &str) -> Self {
        let mut blocked = Self::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            if let Some(code) = words.next() {
                blocked.codes.insert(code.to_owned());
            }
            if let Some(endpoint) = words.next() {
                blocked
                    .endpoints
                    .insert(endpoint.trim_end_matches('/').to_owned());
            }
        }
        blocked
    }
}

/// The peers this node may not talk to; shared by every part of the node that calls out or
/// admits calls in. Empty unless the faults file lists some.
#[derive(Clone, Debug, Default)]
pub struct Blocked(Arc<RwLock<BlockedPeers>>);

impl Blocked {
    /// The blocked peers of this process: when [`FAULTS_ENV`] is set, read from the file it
    /// names now and every [`POLL`] after, for as long as the returned value (or a clone) lives.
    /// Must be called within a tokio runtime when the variable is set.
    pub fn from_env() -> Self {
        let blocked = Self::default();
        if let Some(path) = std::env::var_os(FAULTS_ENV) {
            blocked.watch(PathBuf::from(path));
        }
        blocked
    }

    /// Reads `path` now and every [`POLL`] until every clone of this value is dropped.
    pub fn watch(&self, path: PathBuf) {
        self.reload(&path);
        let weak: Weak<RwLock<BlockedPeers>> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                Blocked(shared).reload(&path);
            }
        });
    }

    fn reload(&self, path: &std::path::Path) {
        // A file that cannot be read (not written yet, or removed) blocks no one.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        self.set(BlockedPeers::parse(&text));
    }

    /// Replaces the blocked peers.
    pub fn set(&self, peers: BlockedPeers) {
        let mut now = self.0.write().unwrap_or_else(|p| p.into_inner());
        if *now != peers {
            tracing::warn!(
                blocked = ?peers.codes,
                "fault hook: the peers this node may not talk to changed"
            );
            *now = peers;
        }
    }

    /// Whether node `code` is blocked.
    pub fn blocks(&self, code: &NodeCode) -> bool {
        let peers = self.0.read().unwrap_or_else(|p| p.into_inner());
        !peers.codes.is_empty() && peers.codes.contains(code.as_str())
    }

    /// Whether the node at `endpoint` (`https://HOST:PORT`) is blocked.
    pub fn blocks_endpoint(&self, endpoint: &str) -> bool {
        let peers = self.0.read().unwrap_or_else(|p| p.into_inner());
        !peers.endpoints.is_empty() && peers.endpoints.contains(endpoint.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faults_file_lists_peers_by_code_and_endpoint() {
        let blocked = Blocked::default();
        blocked.set(BlockedPeers::parse(
            "# partition 3\n420502 https://127.0.0.1:4431/\n\n  420503001  https://127.0.0.1:4432\n",
        ));
        let code = |c: &str| c.parse::<NodeCode>().unwrap();
        assert!(blocked.blocks(&code("420502")));
        assert!(blocked.blocks(&code("420503001")));
        assert!(!blocked.blocks(&code("420500")));
        assert!(blocked.blocks_endpoint("https://127.0.0.1:4431"));
        assert!(blocked.blocks_endpoint("https://127.0.0.1:4432/"));
        assert!(!blocked.blocks_endpoint("https://127.0.0.1:4433"));
        blocked.set(BlockedPeers::parse(""));
        assert!(!blocked.blocks(&code("420502")));
    }

    #[tokio::test]
    async fn the_file_is_read_again_as_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults");
        let blocked = Blocked::default();
        blocked.watch(path.clone());
        let city: NodeCode = "420500".parse().unwrap();
        assert!(!blocked.blocks(&city), "a missing file blocks no one");
        std::fs::write(&path, "420500 https://127.0.0.1:1\n").unwrap();
        tokio::time::sleep(POLL * 3).await;
        assert!(blocked.blocks(&city));
        std::fs::remove_file(&path).unwrap();
        tokio::time::sleep(POLL * 3).await;
        assert!(!blocked.blocks(&city));
    }
}
