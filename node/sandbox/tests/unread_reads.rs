//! The case of a member that opens 600 reads and never reads them, on a real node of the sandbox
//! federation over loopback mutual TLS: the reads beyond the caller's limit are refused and say
//! what to do, memory and threads stay bounded, another member is served meanwhile, and the
//! cancelled reads' slots come back. Alone in its test binary, so that the process's memory and
//! threads are this federation's.

mod util;

use std::time::Duration;

use prost::Message;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::{BatchHeader, SignedBatch};
use tonic::transport::Channel;
use util::*;

/// The largest growth of the test process's resident memory while 600 reads are held unread
/// (the street's 64 admitted, each with what its transport buffers on both ends, and the 536
/// refused) and another member reads. Measured on the build machine: 45 MB, of which up to
/// 32 MB are the client's own receive windows (64 streams of 512 KiB); the node's side alone
/// is in README.md.
const UNREAD_GROWTH_MB: u64 = 120;

/// Threads the held reads may add. Batches are made by each node's fixed workers, so none are
/// expected; the margin is for the runtime's flushes of audit entries.
const THREAD_GROWTH: u64 = 8;

/// `VmRSS` (MB) and `Threads` of this process.
fn status() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:") / 1024, field("Threads:"))
}

/// Opens `n` reads on `client` without reading them: the streams admitted, and the refusals.
async fn open_unread(
    client: &mut ExchangeClient<Channel>,
    n: usize,
) -> (Vec<tonic::Streaming<SignedBatch>>, Vec<tonic::Status>) {
    let (mut held, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..n {
        match client.query(own_query()).await {
            Ok(response) => held.push(response.into_inner()),
            Err(status) => refused.push(status),
        }
    }
    (held, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_unread_reads_are_capped_per_caller_and_hold_little() {
    let f = federation(5000).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().clone();
    let district_reads = || async {
        f.clients[DISTRICT]
            .read(None, principal_query(&open.district), |_, _| Ok(()))
            .await
            .unwrap()
    };
    // Once before measuring, so that pools and caches are in place.
    assert_eq!(district_reads().await.records, 5000);
    let mut client = f.clients[STREET].connect(&street).await.unwrap();
    let (rss_before, threads_before) = status();

    let (held, refused) = open_unread(&mut client, 600).await;
    assert_eq!((held.len(), refused.len()), (64, 536));
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.message(),
            "420502001 has 64 reads open on node 420502001, the most one node may have: finish or cancel one, then ask again"
        );
    }

    // Another member is served meanwhile, through its district, in full; memory and threads are
    // watched while it reads and after.
    let mut peak = (rss_before, threads_before);
    for _ in 0..3 {
        assert_eq!(district_reads().await.records, 5000);
        let (rss, threads) = status();
        peak = (peak.0.max(rss), peak.1.max(threads));

        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "600 unread reads: resident {rss_before} -> {} MB, threads {threads_before} -> {}",
        peak.0, peak.1
    );
    assert!(
        peak.0 < rss_before + UNREAD_GROWTH_MB,
        "resident memory grew from {rss_before} MB to {} MB with 600 unread reads",
        peak.0
    );
    assert!(
        peak.1 <= threads_before + THREAD_GROWTH,
        "threads grew from {threads_before} to {} with 600 unread reads",
        peak.1
    );

    // Cancelled, the reads give their slots back: as many new ones are admitted again.
    drop(held);
    let mut reopened = Vec::new();
    for _ in 0..100 {
        let (held, refused) = open_unread(&mut client, 64).await;
        if refused.is_empty() {
            reopened = held;
            break;
        }
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reopened.len(), 64, "the cancelled reads' slots came back");
    // One is served in full while the other 63 stay unread on the same connection: they fill
    // their own windows, not the connection's.
    let mut read = reopened.pop().unwrap();
    let mut records = 0;
    while let Some(batch) = read.message().await.unwrap() {
        records += BatchHeader::decode(batch.header.as_slice())
            .unwrap()
            .record_count;
    }
    assert_eq!(records, 5000);
    let threads = status().1;
    assert!(
        threads <= threads_before + THREAD_GROWTH,
        "threads grew from {threads_before} to {threads} once the reads were cancelled"
    );
    drop(reopened);
    f.federation.stop().await.unwrap();
}
