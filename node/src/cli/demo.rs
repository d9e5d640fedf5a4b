//! `tierlink demo`: a city, a district and a street on loopback; the street publishes the example
//! catalogs and generated residents and buildings; the district and the city read them, the city
//! both directly and through the district; every signature is checked, and the summary shows who
//! asked whom for what.

use std::path::PathBuf;
use std::time::Instant;

use tierlink_proto::v1::{HistoryRequest, PutRecordsRequest, QueryRequest};

use super::{CliError, DemoArgs, setup::shutdown_signal};
use crate::catalog::EXAMPLES;
use crate::exchange::StreamSummary;
use crate::exchange::client::NodeClient;
use crate::exchange::file::{BatchWriter, read_batches, verify_file};
use crate::federation::{LocalFederation, default_units};
use crate::identity::NodeCode;
use crate::sample;

const RESIDENTS: &str = "101001001/000001";
const BUILDINGS: &str = "103001001/000001";
const WRITE_BATCH: usize = 2000;

struct Exchange {
    asker: String,
    path: String,
    conditions: String,
    summary: StreamSummary,
    millis: u128,
}

fn columns(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

fn demo_error(what: &str) -> impl FnOnce(crate::exchange::client::ClientError) -> CliError + '_ {
    move |e| CliError::Demo(format!("{what}: {e}"))
}

pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let temp;
    let root: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| CliError::Input(format!("temporary directory: {e}")))?;
            temp.path().to_owned()
        }
    };
    if root.join("ca").exists() {
        return Err(CliError::Input(format!(
            "{} already holds a federation: give an empty or new --dir",
            root.display()
        )));
    }
    let federation = LocalFederation::create(&root, default_units()).await?;
    let clients: Vec<NodeClient> = federation
        .nodes
        .iter()
        .map(|n| NodeClient::open(n.dir.clone()))
        .collect::<Result<_, _>>()?;
    let (city, district, street) = (&clients[0], &clients[1], &clients[2]);

    println!(
        "Tierlink demo: a three-tier federation on 127.0.0.1 (files in {})",
        root.display()
    );
    for node in &federation.nodes {
        let c = &node.dir.config;
        println!(
            "  {:<9} {:<10} {:<34} {}",
            c.node.tier.as_str(),
            c.node.code.as_str(),
            c.node.name,
            c.server.endpoint
        );
    }

    // The street publishes its catalogs and records.
    let loading = Instant::now();
    for (file, json) in EXAMPLES {
        street
            .put_catalog(json.to_string())
            .await
            .map_err(demo_error(file))?;
    }
    let mut stored = 0;
    for (catalog, cols, rows) in [
        (
            RESIDENTS,
            sample::RESIDENT_COLUMNS,
            sample::residents(street.code().as_str(), args.residents, 1),
        ),
        (
            BUILDINGS,
            sample::BUILDING_COLUMNS,
            sample::buildings(street.code().as_str(), args.buildings, 2),
        ),
    ] {
        for chunk in rows.chunks(WRITE_BATCH) {
            let done = street
                .put_records(catalog, columns(cols), chunk.to_vec())
                .await
                .map_err(demo_error(catalog))?;
            stored += done.written;
        }
    }
    // A resident moves: a second version of the record.
    let mut moved = sample::residents(street.code().as_str(), 1, 1);
    moved[0][12] = "夷陵大道 58 号".into();
    street
        .put_records(RESIDENTS, columns(sample::RESIDENT_COLUMNS), moved)
        .await
        .map_err(demo_error("update"))?;
    println!(
        "\n{} (street) published {} catalogs and stored {stored} records ({} residents, {} buildings) in {} ms",
        street.code(),
        EXAMPLES.len(),
        args.residents,
        args.buildings,
        loading.elapsed().as_millis()
    );

    // Reads across the tiers, each verified batch by batch.
    let query = |catalog: &str, target: &NodeCode| QueryRequest {
        catalog: catalog.into(),
        target: target.to_string(),
        ..Default::default()
    };
    let mut exchanges = Vec::new();
    let mut exchange = async |asker: &NodeClient,
                              via: Option<&NodeCode>,
                              request: QueryRequest|
           -> Result<(), CliError> {
        let t = Instant::now();
        let conditions = request
            .r#where
            .iter()
            .map(|c| format!("{}={}", c.item, c.value))
            .collect::<Vec<_>>()
            .join(" ");
        let summary = asker
            .query(via, request, |_, _| Ok(()))
            .await
            .map_err(demo_error("query"))?;
        let path = via
            .map(|v| format!("via {v}"))
            .unwrap_or_else(|| "direct".into());
        exchanges.push(Exchange {
            asker: asker.code().to_string(),
            path,
            conditions,
            summary,
            millis: t.elapsed().as_millis(),
        });
        Ok(())
    };
    exchange(district, None, query(RESIDENTS, street.code())).await?;
    exchange(district, None, query(BUILDINGS, street.code())).await?;
    exchange(city, None, query(RESIDENTS, street.code())).await?;
    exchange(city, Some(district.code()), query(RESIDENTS, street.code())).await?;
    let mut floating = query(RESIDENTS, street.code());
    floating.r#where = vec![tierlink_proto::v1::FieldEquals {
        item: "floating".into(),
        value: "true".into(),
    }];
    exchange(city, Some(district.code()), floating).await?;

    // The city keeps what it got through the district, and checks it later with the CA alone.
    let export = root.join("city-residents-via-district.tlb");
    let mut writer = BatchWriter::create(&export)?;
    city.query(
        Some(district.code()),
        query(RESIDENTS, street.code()),
        |batch, _| {
            writer
                .write(&batch)
                .map_err(|e| crate::exchange::client::ClientError::Io(e.to_string()))
        },
    )
    .await
    .map_err(demo_error("export"))?;
    writer.finish()?;
    let offline = verify_file(&export, city.verifier())?;

    // One changed byte in the records of one batch is caught.
    let mut batches = read_batches(&export)?;
    let target = batches.len() / 2;
    let at = batches[target].records.len() / 2;
    batches[target].records[at] ^= 0x01;
    let tampered = root.join("tampered.tlb");
    let mut writer = BatchWriter::create(&tampered)?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let rejection = match verify_file(&tampered, city.verifier()) {
        Ok(_) => return Err(CliError::Demo("a tampered batch file verified".into())),
        Err(e) => e.to_string(),
    };

    // History of the resident who moved.
    let mut versions = Vec::new();
    let history = HistoryRequest {
        catalog: RESIDENTS.into(),
        target: street.code().to_string(),
        key: format!("P{}0000000", street.code()),
        request_id: String::new(),
    };
    district
        .history(None, history, |_, v| {
            versions.extend(v.records.into_iter().map(|r| r.version));
            Ok(())
        })
        .await
        .map_err(demo_error("history"))?;

    // Only the street itself may write to the street.
    let mut as_district = district
        .connect(street.code())
        .await
        .map_err(demo_error("connect"))?;
    let refusal = match as_district
        .put_records(PutRecordsRequest {
            catalog: RESIDENTS.into(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => return Err(CliError::Demo("the district wrote to the street".into())),
        Err(status) => crate::exchange::client::ClientError::from(status).to_string(),
    };

    println!(
        "\n{:<10} {:<10} {:<11} {:<18} {:>8} {:>8}  {:<10} {:>7}  where",
        "asker", "producer", "path", "catalog", "records", "batches", "signatures", "time"
    );
    for e in &exchanges {
        let s = &e.summary;
        println!(
            "{:<10} {:<10} {:<11} {:<18} {:>8} {:>8}  {:<10} {:>4} ms  {}",
            e.asker,
            s.producer,
            e.path,
            s.catalog,
            s.records,
            s.batches,
            "verified",
            e.millis,
            e.conditions
        );
    }
    let withheld = exchanges
        .first()
        .map(|e| e.summary.withheld.join(", "))
        .unwrap_or_default();
    println!("\nnot shared, never left the street: {withheld}");
    println!(
        "through the district, the street's batches arrive as the street signed them (served to {})",
        exchanges[3].summary.consumer
    );
    println!(
        "exported {}: verified offline with ca.crt alone, {} records in {} batches signed by {}",
        export.display(),
        offline.records,
        offline.batches,
        offline.producer
    );
    println!("one byte changed in a copy: rejected ({rejection})");
    println!(
        "history of P{}0000000 at the street: versions {versions:?}",
        street.code()
    );
    println!("the district writing to the street: refused ({refusal})");
    println!(
        "\ndone in {:.1} s; every batch verified.",
        started.elapsed().as_secs_f64()
    );

    if args.serve {
        let manifest = federation.write_manifest()?;
        println!(
            "\nserving; connection details for any gRPC client in {}",
            manifest.display()
        );
        println!("press Ctrl-C to stop");
        shutdown_signal().await;
    }
    federation.stop().await?;
    Ok(())
}
