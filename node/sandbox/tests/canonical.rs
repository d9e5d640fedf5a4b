//! One form per value, end to end: records written over gRPC (`PutRecords`) are stored in their
//! one form or refused with it, and a query's conditions find them however the value is typed.
//! The inputs are handed cases, copied under `tests/cases/`: `id-lowercase-x` (a job seeker's
//! ID number ending in a lowercase `x`) and `dates-nonstandard` (unemployment dates typed nine
//! ways, of which `2023-1-5`, ` 2023-01-05` and `+2023-01-05` used to be stored as written).

mod util;

use tierlink_client::{ClientError, NodeClient};
use tierlink_proto::v1::{FieldEquals, QueryRequest, ReadScope, Record};
use util::*;

const JOB_SEEKERS: &str = "301001001/000001";

/// A CSV file of the cases (no quoting, LF line ends): its header and rows.
fn csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    let header = lines.next().expect("a header line");
    (header, lines.collect())
}

/// The street's own records of job seekers whose `item` equals `value` as typed, with every
/// item in catalog order.
async fn find(street: &NodeClient, item: &str, value: &str) -> Result<Vec<Record>, ClientError> {
    let query = QueryRequest {
        scope: Some(ReadScope {
            catalog: JOB_SEEKERS.into(),
            ..Default::default()
        }),
        r#where: vec![FieldEquals {
            item: item.into(),
            value: value.into(),
        }],
        ..Default::default()
    };
    let mut found = Vec::new();
    street
        .read(None, query, |_, v| {
            found.extend(v.records);
            Ok(())
        })
        .await?;
    Ok(found)
}

/// Position of `item` in the job seekers' records as the street reads them (every item).
fn at(item: &str) -> usize {
    let text = example("job-seekers.json");
    let catalog = tierlink_core::catalog::parse_catalogs(&text, "job-seekers.json")
        .unwrap()
        .remove(0);
    catalog.item_index(item).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_values_take_one_form_and_queries_find_them_however_typed() {
    let f = federation(0).await;
    let street = &f.clients[STREET];
    street
        .put_catalog(example("job-seekers.json"))
        .await
        .unwrap();

    // id-lowercase-x: stored with an uppercase X, found with either.
    let (header, rows) = csv(include_str!("cases/id-lowercase-x/id-lowercase-x.csv"));
    street
        .put_records(JOB_SEEKERS, header.clone(), rows)
        .await
        .unwrap();
    for typed in [
        "42050219881108109X",
        "42050219881108109x",
        " 42050219881108109x",
    ] {
        let found = find(street, "id_number", typed).await.unwrap();
        assert_eq!(found.len(), 1, "{typed:?}");
        assert_eq!(found[0].key, "QA-X-0001");
        assert_eq!(found[0].values[at("id_number")], "42050219881108109X");
    }

    // dates-nonstandard, dates.csv: every spelling but YYYY-MM-DD (padding trimmed) is refused
    // with the form to use, and nothing of the batch is stored.
    let (header, rows) = csv(include_str!("cases/dates-nonstandard/dates.csv"));
    let refused = street
        .put_records(JOB_SEEKERS, header.clone(), rows)
        .await
        .unwrap_err()
        .to_string();
    for (record, typed, hint) in [
        (1, "2023-1-5", " (2023-01-05)"),
        (2, "2023/1/5", " (2023-01-05)"),
        (3, "20230105", " (2023-01-05)"),
        (4, "44931", ""),
        (7, "+2023-01-05", ""),
        (8, "02023-01-05", ""),
        (9, "2023-01-05T00:00:00", ""),
    ] {
        let line = format!(
            "record {record} (key \"QA-DT-{:04}\"): unemployed_since: \"{typed}\" is not a date: write YYYY-MM-DD{hint}",
            record - 1
        );
        assert!(refused.contains(&line), "{line}\nin\n{refused}");
    }
    assert!(refused.contains("problems found: 7"), "{refused}");
    assert!(
        find(street, "unemployed_since", "2023-01-05")
            .await
            .unwrap()
            .is_empty()
    );

    // dates-accepted.csv: refused as a whole for its two spellings that are not a date's form;
    // the rest stored as YYYY-MM-DD, then the two as the refusal says to write them.
    let (header, rows) = csv(include_str!("cases/dates-nonstandard/dates-accepted.csv"));
    let refused = street
        .put_records(JOB_SEEKERS, header.clone(), rows.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("problems found: 2")
            && refused.contains("\"2023-1-5\" is not a date: write YYYY-MM-DD (2023-01-05)")
            && refused.contains("\"+2023-01-05\" is not a date: write YYYY-MM-DD"),
        "{refused}"
    );
    let since = header.iter().position(|c| c == "unemployed_since").unwrap();
    let (good, bad): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|r| !matches!(r[since].as_str(), "2023-1-5" | "+2023-01-05"));
    street
        .put_records(JOB_SEEKERS, header.clone(), good)
        .await
        .unwrap();
    let found = find(street, "unemployed_since", "2023-1-5").await.unwrap();
    let keys: Vec<&str> = found.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["QA-DA-0001", "QA-DA-0003"]);
    let corrected = bad
        .into_iter()
        .map(|mut r| {
            r[since] = "2023-01-05".into();
            r
        })
        .collect();
    street
        .put_records(JOB_SEEKERS, header, corrected)
        .await
        .unwrap();
    for typed in [
        "2023-1-5",
        "2023-01-05",
        "2023/01/05",
        "20230105",
        " 2023-01-05",
    ] {
        let found = find(street, "unemployed_since", typed).await.unwrap();
        assert_eq!(found.len(), 4, "{typed:?}");
        assert!(
            found
                .iter()
                .all(|r| r.values[at("unemployed_since")] == "2023-01-05"),
            "one spelling stored"
        );
    }

    // Numbers: one spelling whatever zeros they were written with, found however typed.
    let wage = at("desired_wage");
    let (header, rows) = csv(include_str!("cases/id-lowercase-x/id-lowercase-x.csv"));
    let wages = ["05000.0", "5000.00", "5000"];
    let rows: Vec<Vec<String>> = wages
        .iter()
        .enumerate()
        .map(|(n, typed)| {
            let mut row = rows[0].clone();
            row[0] = format!("QA-WG-{n:04}");
            row[header.iter().position(|c| c == "desired_wage").unwrap()] = (*typed).into();
            row
        })
        .collect();
    street.put_records(JOB_SEEKERS, header, rows).await.unwrap();
    for typed in wages.iter().chain(&[" 005000.000 "]) {
        let found = find(street, "desired_wage", typed).await.unwrap();
        let keys: Vec<&str> = found.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            ["QA-WG-0000", "QA-WG-0001", "QA-WG-0002"],
            "{typed:?}"
        );
        assert!(found.iter().all(|r| r.values[wage] == "5000"), "{typed:?}");
    }
    // A condition no number could equal is refused, not silently unmatched.
    for typed in ["+5000", "5e3"] {
        let err = find(street, "desired_wage", typed)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a number"), "{typed:?}: {err}");
    }

    // A condition no date could equal is refused with the form to use.
    let err = find(street, "unemployed_since", "44931")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("where unemployed_since: \"44931\" is not a date: write YYYY-MM-DD"),
        "{err}"
    );
    f.federation.stop().await.unwrap();
}
