//! Following one read through the logs: a federation on loopback logs JSON lines as
//! `tierlink serve --log-format json` writes them, and the request id of a read the city makes
//! through the district is in the spans of log lines at the city, the district and the street,
//! and is the request id of the audit entries at both ends.

mod util;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tierlink_core::config::LogFormat;
use tierlink_proto::v1::{QueryRequest, ReadScope};
use tierlink_store::audit::Side;
use util::*;

/// Where the log lines go: one buffer for every node of the process.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The nodes whose log lines have a `read` span with request id `id`.
fn nodes_logging(buffer: &Buffer, id: &str) -> BTreeSet<String> {
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let mut nodes = BTreeSet::new();
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).expect("every line is JSON");
        for span in line["spans"].as_array().into_iter().flatten() {
            if span["name"] == "read" && span["request_id"] == id {
                nodes.insert(span["node"].as_str().unwrap().to_owned());
            }
        }
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relayed_reads_request_id_is_in_the_logs_of_the_asker_the_relay_and_the_producer() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let filter = tracing_subscriber::EnvFilter::new("info,openraft=warn");
    let subscriber =
        tierlink_node::logs::subscriber(LogFormat::Json, filter, move || writer.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let f = federation(10).await;
    let open = open_policies(&f).await;
    let district = f.clients[DISTRICT].code().clone();
    let query = QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: "420502001".into(),
            credential: open.city,
            ..Default::default()
        }),
        ..Default::default()
    };
    let summary = f.clients[CITY]
        .read(Some(&district), query, |_, _| Ok(()))
        .await
        .unwrap();
    let id = summary.request_id;
    assert_eq!(id.len(), 32, "the asking node made the id: {id}");

    // The audit entries at both ends carry the same id.
    for (n, side) in [(STREET, Side::Producer), (CITY, Side::Consumer)] {
        let audit = f.federation.nodes[n].audit().unwrap();
        let entry = audited(audit, |e| e.request_id == id).await;
        assert_eq!(entry.side, Some(side));
        assert_eq!(entry.catalog, RESIDENTS);
    }
    let every: BTreeSet<String> = [CITY, DISTRICT, STREET]
        .iter()
        .map(|n| f.clients[*n].code().to_string())
        .collect();
    // The relay's last line is written as its stream ends, just after the answer.
    for _ in 0..100 {
        if nodes_logging(&buffer, &id) == every {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(nodes_logging(&buffer, &id), every);
    // Another read's id is not in them.
    assert!(nodes_logging(&buffer, "0123456789abcdef0123456789abcdef").is_empty());
    f.federation.stop().await.unwrap();
}
