//! `/metrics` end to end: a federation on loopback reads, refuses, writes and changes its
//! directory, and each node's scrape shows it where it happened — the read at the producer, the
//! relay and the asking node by its catalog and outcome, the policy's decisions, the write, the
//! gRPC and REST calls, the directory and the audit. Every metric the shipped alert rules and
//! dashboard name is in the scrape.

mod util;

use std::collections::{BTreeMap, BTreeSet};

use tierlink_sandbox::sample;
use util::http::Gateway;
use util::*;

/// A scrape's samples, by name and labels as written (`name{a="b",c="d"}`).
struct Scrape {
    samples: BTreeMap<String, f64>,
    text: String,
}

impl Scrape {
    async fn of(f: &Fixture, n: usize) -> Self {
        let response = Gateway::of(f, n).get("/metrics").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect();
        Self { samples, text }
    }

    /// The sample `series` (`name{labels}` as the node writes them, labels in declared order),
    /// 0 when absent: a counter not yet moved.
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// Whether the scrape declares metric `name`, or the histogram whose series `name` is.
    fn declares(&self, name: &str) -> bool {
        let typed = |name: &str, kind: &str| self.text.contains(&format!("# TYPE {name} {kind}\n"));
        ["counter", "gauge", "histogram"]
            .iter()
            .any(|k| typed(name, k))
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|histogram| typed(histogram, "histogram"))
            })
    }
}

fn read_series(metric: &str, catalog: &str, side: &str, outcome: &str) -> String {
    format!("{metric}{{catalog=\"{catalog}\",side=\"{side}\",outcome=\"{outcome}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_directory_changes_move_their_metrics_where_they_happen() {
    let f = federation(40).await;
    let open = open_policies(&f).await;
    let district = f.clients[DISTRICT].code().clone();
    let before = Scrape::of(&f, STREET).await;

    // A read the city's analyst makes through the district: produced at the street, relayed by
    // the district, received at the city.
    let mut records = 0;
    f.clients[CITY]
        .read(
            Some(&district),
            residents_query(open.city.clone()),
            |_, batch| {
                records += batch.records.len() as u64;
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(records, 40);
    // A read for a purpose no grant names: refused by the street's policy.
    let mut wrong = open.city.clone().unwrap();
    wrong.purpose = "curiosity".into();
    let refused = f.clients[CITY]
        .read(None, residents_query(Some(wrong)), |_, _| Ok(()))
        .await;
    assert!(refused.is_err());
    // A write of ten buildings.
    f.clients[STREET]
        .put_records(
            BUILDINGS,
            columns(sample::BUILDING_COLUMNS),
            sample::buildings("420502001", 10, 9),
        )
        .await
        .unwrap();

    let street = Scrape::of(&f, STREET).await;
    let moved = |series: &str| street.get(series) - before.get(series);
    let served = |metric| read_series(metric, RESIDENTS, "producer", "served");
    assert_eq!(moved(&served("tierlink_reads_total")), 1.0);
    assert_eq!(moved(&served("tierlink_read_records_total")), 40.0);
    assert!(moved(&served("tierlink_read_bytes_total")) > 40.0 * 50.0);
    let refused = read_series("tierlink_reads_total", RESIDENTS, "producer", "refused");
    assert_eq!(moved(&refused), 1.0, "{}", street.text);
    assert_eq!(
        moved(r#"tierlink_policy_decisions_total{action="refuse",rule="no-grant"}"#),
        1.0
    );
    // Every shared item of the residents is granted in clear by name.
    let clear = moved(r#"tierlink_policy_decisions_total{action="clear",rule="named-in-grant"}"#);
    assert!(clear >= 20.0, "{clear}");
    let written = format!("{{catalog=\"{BUILDINGS}\",outcome=\"written\"}}");
    assert_eq!(moved(&format!("tierlink_writes_total{written}")), 1.0);
    assert_eq!(
        moved(&format!("tierlink_write_records_total{written}")),
        10.0
    );
    assert!(moved(&format!("tierlink_write_bytes_total{written}")) > 10.0 * 20.0);
    let grpc = |method: &str, code: &str| {
        format!(
            "tierlink_grpc_calls_total{{service=\"tierlink.v1.Exchange\",method=\"{method}\",code=\"{code}\"}}"
        )
    };
    assert_eq!(moved(&grpc("Query", "OK")), 1.0);
    assert_eq!(moved(&grpc("Query", "PERMISSION_DENIED")), 1.0);
    assert_eq!(moved(&grpc("PutRecords", "OK")), 1.0);
    assert_eq!(
        moved(
            r#"tierlink_grpc_call_duration_seconds_count{service="tierlink.v1.Exchange",method="PutRecords"}"#
        ),
        1.0
    );
    // The scrape before this one is a gateway request by its route.
    assert!(
        street.get(r#"tierlink_rest_requests_total{route="/metrics",method="GET",status="200"}"#)
            >= 1.0
    );
    assert!(
        street.get("tierlink_audit_entries_total") > before.get("tierlink_audit_entries_total")
    );
    assert_eq!(street.get("tierlink_audit_chain_verified"), 1.0);
    assert!(street.get("tierlink_store_size_bytes") > 0.0);
    for certificate in ["node", "ca"] {
        let left = street.get(&format!(
            "tierlink_certificate_expiry_seconds{{certificate=\"{certificate}\"}}"
        ));
        assert!(left > 14.0 * 86_400.0, "{certificate}: {left}");
    }
    // Made-up catalog codes are refused without becoming labels.
    assert!(!street.text.contains("curiosity"));

    // The relay and the asking node count the same read on their sides.
    let relay = Scrape::of(&f, DISTRICT).await;
    assert_eq!(
        relay.get(&read_series(
            "tierlink_reads_total",
            RESIDENTS,
            "relay",
            "served"
        )),
        1.0
    );
    assert_eq!(
        relay.get(&read_series(
            "tierlink_read_records_total",
            RESIDENTS,
            "relay",
            "served"
        )),
        40.0
    );
    let city = Scrape::of(&f, CITY).await;
    assert_eq!(
        city.get(&read_series(
            "tierlink_reads_total",
            RESIDENTS,
            "consumer",
            "served"
        )),
        1.0
    );
    assert_eq!(
        city.get(&read_series(
            "tierlink_read_bytes_total",
            RESIDENTS,
            "consumer",
            "served"
        )),
        street.get(&served("tierlink_read_bytes_total"))
            - before.get(&served("tierlink_read_bytes_total")),
        "the asking node receives the bytes the producer sent"
    );

    // A directory change: applied everywhere, and the leader sees every replica take it.
    let role = tierlink_core::policy::Role {
        unit: district.clone(),
        name: "auditor".into(),
        department: "Data Office".into(),
        post: "auditor".into(),
    };
    let define = tierlink_core::policy::PolicyCommand::DefineRole(role);
    f.federation
        .issue(
            &district,
            vec![tierlink_node::directory::DirectoryCommand::Policy(define)],
        )
        .await
        .unwrap();
    let leader = (0..f.federation.nodes.len())
        .find(|n| f.federation.nodes[*n].directory().unwrap().is_leader())
        .expect("a leader");
    let mut after = Scrape::of(&f, leader).await;
    for _ in 0..100 {
        if after
            .samples
            .iter()
            .filter(|(s, _)| s.starts_with("tierlink_directory_replica_lag_entries{"))
            .all(|(_, lag)| *lag == 0.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = Scrape::of(&f, leader).await;
    }
    assert_eq!(after.get("tierlink_directory_has_leader"), 1.0);
    assert!(after.get("tierlink_directory_term") >= 1.0);
    let lags: BTreeSet<&str> = after
        .samples
        .iter()
        .filter_map(|(s, lag)| {
            let replica = s
                .strip_prefix("tierlink_directory_replica_lag_entries{replica=\"")?
                .strip_suffix("\"}")?;
            assert_eq!(*lag, 0.0, "{s} has caught up");
            Some(replica)
        })
        .collect();
    assert!(lags.contains(district.as_str()), "{lags:?}");
    let applied = after.get("tierlink_directory_applied_index");
    assert!(applied > before.get("tierlink_directory_applied_index"));
    assert!(after.get("tierlink_directory_commit_index") >= applied);
    assert!(after.get("tierlink_directory_log_entries") > 0.0);
    assert!(after.declares("tierlink_directory_leader_changes_total"));
    let street_after = Scrape::of(&f, STREET).await;
    assert!(street_after.get("tierlink_directory_applied_index") >= applied);
    assert_eq!(street_after.get("tierlink_directory_has_leader"), 1.0);

    // Every metric the alert rules and the dashboard use is served: a labelled family from its
    // first sample on (the write's only at the street).
    let served = Scrape {
        samples: BTreeMap::new(),
        text: [&street, &relay, &city, &after]
            .map(|s| s.text.as_str())
            .concat(),
    };
    let ops = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops");
    let name = regex::Regex::new(r"tierlink_[a-z0-9_]+").unwrap();
    for file in ["prometheus/alerts.yml", "grafana/tierlink.json"] {
        let text = std::fs::read_to_string(ops.join(file)).unwrap();
        let used: BTreeSet<&str> = name.find_iter(&text).map(|m| m.as_str()).collect();
        assert!(used.len() >= 8, "{file} names {used:?}");
        for metric in used {
            // A histogram's series, by its name: `_bucket`, `_sum` and `_count` are its samples.
            assert!(
                served.declares(metric),
                "{file} uses {metric}, which no node serves"
            );
        }
    }
    f.federation.stop().await.unwrap();
}
