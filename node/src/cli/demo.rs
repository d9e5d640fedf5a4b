//! `tierlink demo`: a city, two districts and three street offices on loopback, linked by the
//! federation directory. The streets publish catalogs and records; the city finds them in the
//! directory and reads them, directly and through the districts; every signature is checked, and
//! the summary shows who asked whom for what, and the directory's replicas.

use std::path::PathBuf;
use std::time::Instant;

use tierlink_proto::v1::{HistoryRequest, PutRecordsRequest, QueryRequest};

use super::{CliError, DemoArgs, setup::shutdown_signal};
use crate::catalog::EXAMPLES;
use crate::exchange::StreamSummary;
use crate::exchange::client::NodeClient;
use crate::exchange::file::{BatchWriter, read_batches, verify_file};
use crate::federation::{LocalFederation, demo_units};
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
    let federation = LocalFederation::create(&root, demo_units()).await?;
    let clients: Vec<NodeClient> = federation
        .nodes
        .iter()
        .map(|n| NodeClient::open(n.dir.clone()))
        .collect::<Result<_, _>>()?;
    let (city, district, street) = (&clients[0], &clients[1], &clients[2]);
    let (wujiagang, wujia) = (&clients[3], &clients[5]);

    println!(
        "Tierlink demo: a three-tier federation on 127.0.0.1, one directory replicated on every node (files in {})",
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

    // The other streets hold their own data; every street publishes its catalogs in the directory.
    let wujia_residents = args.residents / 5;
    wujia
        .put_catalog(EXAMPLES[0].1.to_string())
        .await
        .map_err(demo_error("catalog"))?;
    wujia
        .put_records(
            RESIDENTS,
            columns(sample::RESIDENT_COLUMNS),
            sample::residents(wujia.code().as_str(), wujia_residents, 3),
        )
        .await
        .map_err(demo_error(RESIDENTS))?;
    let xueyuan = &clients[4];
    for file in ["buildings.json", "grid-cells.json"] {
        let json = EXAMPLES.iter().find(|(f, _)| *f == file).map(|(_, j)| *j);
        xueyuan
            .put_catalog(json.unwrap_or_default().to_string())
            .await
            .map_err(demo_error(file))?;
    }
    let mut published = 0;
    for (n, client) in [(2, street), (4, xueyuan), (5, wujia)] {
        let own = client
            .list_catalogs(None, "")
            .await
            .map_err(demo_error("list"))?;
        let mut commands = Vec::new();
        for c in own.catalogs {
            commands.push(super::directory::publication(client, &c.code).await?);
        }
        published += commands.len();
        let replica = federation.nodes[n]
            .directory()
            .ok_or_else(|| CliError::Demo("a street is not running".into()))?;
        let replies = replica
            .propose(commands)
            .await
            .map_err(|e| CliError::Demo(e.to_string()))?;
        if let Some(crate::directory::DirectoryReply::Rejected { reason }) = replies
            .iter()
            .find(|r| matches!(r, crate::directory::DirectoryReply::Rejected { .. }))
        {
            return Err(CliError::Demo(reason.clone()));
        }
    }
    let revision = federation.nodes[0]
        .directory()
        .map_or(0, |r| r.view(|s| s.revision));
    federation.wait_for_revision(revision).await?;
    println!("the streets published {published} catalogs in the directory; every node holds them");

    // The city searches the directory for residents' ID numbers across every tier.
    let city_dir = &federation.nodes[0].dir;
    let mut directory = crate::directory::client::connect(
        &city_dir.credentials()?,
        &city_dir.config.server.endpoint,
    )
    .await?;
    println!(
        "
the city searches the directory for \"公民身份号码\" (citizen ID number):"
    );
    super::directory::print_catalogs(
        &mut directory,
        tierlink_proto::v1::CatalogsRequest {
            text: "公民身份号码".into(),
            ..Default::default()
        },
    )
    .await?;

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
    exchange(city, Some(wujiagang.code()), query(RESIDENTS, wujia.code())).await?;

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
        "\nthe directory, seen from {} (a street, a learner):",
        street.code()
    );
    let street_dir = &federation.nodes[2].dir;
    let mut at_street = crate::directory::client::connect(
        &street_dir.credentials()?,
        &street_dir.config.server.endpoint,
    )
    .await?;
    super::directory::print_status(&mut at_street).await?;
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
