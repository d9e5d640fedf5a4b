//! `tierlink demo`: a city, two districts and three street offices on loopback, linked by the
//! federation directory. The streets publish catalogs and records; the city finds them in the
//! directory and reads them, directly and through the districts; every signature is checked, and
//! the summary shows who asked whom for what, and the directory's replicas.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use tierlink_client::NodeClient;
use tierlink_core::catalog::EXAMPLES;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, PolicyCommand, Redactor,
};
use tierlink_core::signed::StreamSummary;
use tierlink_core::signed::file::{BatchWriter, read_batches, verify_file};
use tierlink_proto::v1::{HistoryRequest, PutRecordsRequest, QueryRequest, ReadScope, Record};
use tierlink_sandbox::federation::cast::{CITY, WUJIA, WUJIAGANG, XILING, XILING_STREET, XUEYUAN};
use tierlink_sandbox::federation::{LocalFederation, demo_units};
use tierlink_sandbox::sample;

use super::{CliError, setup::shutdown_signal};

mod cases;
mod postgres;

/// `tierlink demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the federation's files [default: a temporary directory, removed at exit].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep serving after the demo, until interrupted; writes DIR/federation.json.
    #[arg(long, requires = "dir")]
    pub serve: bool,
    /// Residents to generate at the street.
    #[arg(long, default_value_t = 5000)]
    pub residents: usize,
    /// Buildings to generate at the street.
    #[arg(long, default_value_t = 1210)]
    pub buildings: usize,
    /// A webhook receiver (e.g. `python3 ops/webhook-receiver.py`) the district may deliver to,
    /// `http://127.0.0.1:PORT/`: the district's officer gets the street's building changes there.
    #[arg(long, value_name = "URL")]
    pub webhook_receiver: Option<String>,
}

const RESIDENTS: &str = "101001001/000001";
const BUILDINGS: &str = "103001001/000001";
const WRITE_BATCH: usize = 2000;

/// Grants beyond [`sample::three_tier_policies`]: the street's buildings for the district's
/// civil-affairs officers, and a second street's residents for the city's analysts.
fn wider_grants(
    city: &NodeCode,
    district: &NodeCode,
    street: &NodeCode,
    other_street: &NodeCode,
) -> Vec<(NodeCode, PolicyCommand)> {
    let grant =
        |id: &str, producer: &NodeCode, catalog: &str, grantee: String, purpose: &str| Grant {
            others: Some(Action::Clear),
            ..Grant::new(
                id,
                producer.clone(),
                catalog,
                Grantee::Role(grantee),
                purpose,
                "2099-12-31",
            )
        };
    let analyst = format!("{city}/ps-analyst");
    vec![
        (
            street.clone(),
            PolicyCommand::Grant(grant(
                "district-buildings",
                street,
                BUILDINGS,
                format!("{district}/civil-affairs"),
                sample::ALLOWANCE_REVIEW,
            )),
        ),
        (
            city.clone(),
            PolicyCommand::RequestAccess(AccessRequest {
                id: "city-security-2".into(),
                producer: other_street.clone(),
                catalog: RESIDENTS.into(),
                grantee: Grantee::Role(analyst.clone()),
                purpose: sample::SECURITY_CHECK.into(),
                items: Vec::new(),
                requester: None,
                status: AccessStatus::Pending,
            }),
        ),
        (
            other_street.clone(),
            PolicyCommand::ApproveAccess(Grant {
                items: ["id_number", "birth_date", "sex", "name"]
                    .into_iter()
                    .map(|i| (i.to_string(), Action::Clear))
                    .collect(),
                others: Some(Action::Withhold),
                access_request: Some("city-security-2".into()),
                ..grant(
                    "city-security-2",
                    other_street,
                    RESIDENTS,
                    analyst,
                    sample::SECURITY_CHECK,
                )
            }),
        ),
    ]
}

/// The street's first resident, in key order, of its first community (one every grant's rows
/// include), as the street stores it, with the header naming its columns.
async fn first_in_community(
    street: &NodeClient,
) -> Result<(tierlink_proto::v1::BatchHeader, Record), CliError> {
    let community = format!("{}001", street.code());
    let request = QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            ..Default::default()
        }),
        r#where: vec![tierlink_proto::v1::FieldEquals {
            item: "community_code".into(),
            value: community,
        }],
        limit: 1,
        ..Default::default()
    };
    let mut found = None;
    street
        .read(None, request, |_, v| {
            found = v.records.into_iter().next().map(|r| (v.header, r));
            Ok(())
        })
        .await
        .map_err(demo_error("resident"))?;
    found.ok_or_else(|| CliError::Demo("no resident in the first community".into()))
}

/// A long value (a hash) cut for the table; the batch holds it whole.
fn short(value: &str) -> String {
    if value.chars().count() > 20 {
        format!("{}…", value.chars().take(12).collect::<String>())
    } else {
        value.to_owned()
    }
}

/// How a view finds the demo's resident, by what its grant sends in clear.
enum Find {
    /// By its ID number.
    IdNumber,
    /// By its key.
    Key,
    /// By its key as the view's grant sends it hashed (nothing identifying is clear): among
    /// all the rows the view gets.
    HashedKey(String),
}

/// The same resident as three principals at three tiers see it, side by side, with the
/// redaction manifest each producer-signed batch carried.
async fn three_views(
    street: &NodeClient,
    (own, resident): &(tierlink_proto::v1::BatchHeader, Record),
    askers: [(&NodeClient, &Option<tierlink_proto::v1::Credential>, Find); 3],
) -> Result<(), CliError> {
    let stored = |item: &str| {
        own.columns
            .iter()
            .position(|c| c == item)
            .map_or("", |n| resident.values[n].as_str())
    };
    let mut views = Vec::new();
    for (client, asker, find) in askers {
        let mut request = QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS.into(),
                target: street.code().to_string(),
                credential: asker.clone(),
                ..Default::default()
            }),
            limit: 1,
            ..Default::default()
        };
        match &find {
            Find::IdNumber => {
                request.r#where = vec![tierlink_proto::v1::FieldEquals {
                    item: "id_number".into(),
                    value: stored("id_number").to_owned(),
                }];
            }
            Find::Key => request.key_from = resident.key.clone(),
            Find::HashedKey(_) => request.limit = 0,
        }
        let mut got = None;
        client
            .read(None, request, |_, v| {
                let record = match &find {
                    Find::HashedKey(key) => v.records.into_iter().find(|r| &r.key == key),
                    _ => v.records.into_iter().next(),
                };
                if let Some(record) = record {
                    got = Some((v.header, Some(record)));
                }
                Ok(())
            })
            .await
            .map_err(demo_error("view"))?;
        match got {
            Some((header, Some(record))) => views.push((header, record)),
            _ => return Err(CliError::Demo("a view came back empty".into())),
        }
    }
    println!(
        "\nthe same resident ({}, community {}) seen by three principals; the producer-signed manifest says what was done to each item and why:",
        resident.key,
        stored("community_code")
    );
    let cell = |header: &tierlink_proto::v1::BatchHeader, record: &Record, item: &str| {
        let rule = header
            .manifest
            .iter()
            .find(|m| m.item == item)
            .map(|m| (m.action.clone(), m.rule.clone()))
            .unwrap_or_default();
        let value = header
            .columns
            .iter()
            .position(|c| c == item)
            .map_or("—".to_owned(), |n| short(&record.values[n]));
        format!("{value} [{}, {}]", rule.0, rule.1)
    };
    let width: usize = 50;
    let pad = |text: String| {
        // CJK characters take two columns in a terminal.
        let shown: usize = text
            .chars()
            .map(|c| if (c as u32) < 0x2E80 { 1 } else { 2 })
            .sum();
        format!("{text}{}", " ".repeat(width.saturating_sub(shown)))
    };
    let mut line = String::new();
    for (h, _) in &views {
        line.push_str(&pad(format!("{} ({})", h.principal, h.role)));
    }
    println!("  {:<18}{line}", "item");
    let row = |label: &str, cells: Vec<String>| {
        let mut line = String::new();
        for c in cells {
            line.push_str(&pad(c));
        }
        println!("  {label:<18}{line}");
    };
    row(
        "record key",
        views
            .iter()
            .map(|(h, r)| {
                format!(
                    "{}{}",
                    short(&r.key),
                    if h.key_hashed { " [hash]" } else { "" }
                )
            })
            .collect(),
    );
    for item in [
        "id_number",
        "name",
        "phone",
        "current_address",
        "residence_permit",
        "occupation",
        "religion",
    ] {
        row(item, views.iter().map(|(h, r)| cell(h, r, item)).collect());
    }
    row(
        "grant",
        views.iter().map(|(h, _)| h.grant.clone()).collect(),
    );
    row(
        "purpose",
        views.iter().map(|(h, _)| h.purpose.clone()).collect(),
    );
    row(
        "rows",
        views
            .iter()
            .map(|(h, _)| {
                if h.row_scope.is_empty() {
                    "all the street's".into()
                } else {
                    h.row_scope.clone()
                }
            })
            .collect(),
    );
    row(
        "items sent",
        views
            .iter()
            .map(|(h, _)| {
                format!(
                    "{} of {} (withheld {})",
                    h.columns.len(),
                    h.manifest.len(),
                    h.withheld.len()
                )
            })
            .collect(),
    );
    Ok(())
}

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

/// The shipped example catalog in `file`, empty when there is none (the node then says so).
fn example(file: &str) -> String {
    EXAMPLES
        .iter()
        .find(|(f, _)| *f == file)
        .map_or_else(String::new, |(_, json)| json.to_string())
}

fn demo_error(what: &str) -> impl FnOnce(tierlink_client::ClientError) -> CliError + '_ {
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
    let receiver = args.webhook_receiver.clone();
    let federation = LocalFederation::create_configured(&root, demo_units(), |c| {
        if c.node.code.as_str() == XILING {
            c.webhooks.receivers.extend(receiver.clone());
        }
    })
    .await?;
    let open = |code| -> Result<NodeClient, CliError> {
        Ok(NodeClient::open(federation.node(code)?.dir.clone())?)
    };
    let (city, district, street) = (&open(CITY)?, &open(XILING)?, &open(XILING_STREET)?);
    let (wujiagang, xueyuan, wujia) = (&open(WUJIAGANG)?, &open(XUEYUAN)?, &open(WUJIA)?);

    println!(
        "Tierlink demo: a three-tier federation on 127.0.0.1, one directory replicated on every node (files in {})",
        root.display()
    );
    for node in &federation.nodes {
        let c = &node.dir.config;
        println!(
            "  {:<9} {:<10} {:<34} {}  REST {}",
            c.node.tier.as_str(),
            c.node.code.as_str(),
            c.node.name,
            c.server.endpoint,
            node.gateway_url().unwrap_or_else(|| "-".into())
        );
    }

    // The street publishes its catalogs and records.
    let loading = Instant::now();
    // The household register is the district's (its public-security bureau's); every other
    // example catalog is the street's.
    let street_catalogs: Vec<_> = EXAMPLES
        .iter()
        .filter(|(file, _)| *file != "household-register.json")
        .collect();
    for (file, json) in &street_catalogs {
        street
            .put_catalog(json.to_string())
            .await
            .map_err(demo_error(file))?;
    }
    let mut stored = 0;
    let residents = sample::residents(street.code().as_str(), args.residents, 1);
    for (catalog, cols, rows) in [
        (RESIDENTS, sample::RESIDENT_COLUMNS, residents.clone()),
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
    let current_address = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "current_address")
        .ok_or_else(|| CliError::Demo("the sample residents have no current_address".into()))?;
    moved[0][current_address] = "夷陵大道 58 号".into();
    street
        .put_records(RESIDENTS, columns(sample::RESIDENT_COLUMNS), moved)
        .await
        .map_err(demo_error("update"))?;
    println!(
        "\n{} (street) published {} catalogs and stored {stored} records ({} residents, {} buildings) in {} ms",
        street.code(),
        street_catalogs.len(),
        args.residents,
        args.buildings,
        loading.elapsed().as_millis()
    );

    // The other streets hold their own data; every street publishes its catalogs in the directory.
    let wujia_residents = args.residents / 5;
    wujia
        .put_catalog(example("residents.json"))
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
    // The district's public-security bureau keeps the household register of the street's
    // residents, with a handful of differences from what the street collected.
    let register = sample::household_register(&residents, 8, 11);
    district
        .put_catalog(example("household-register.json"))
        .await
        .map_err(demo_error("catalog"))?;
    district
        .put_records(
            cases::REGISTER,
            columns(sample::HOUSEHOLD_COLUMNS),
            register.rows.clone(),
        )
        .await
        .map_err(demo_error(cases::REGISTER))?;
    for file in ["buildings.json", "grid-cells.json"] {
        xueyuan
            .put_catalog(example(file))
            .await
            .map_err(demo_error(file))?;
    }
    let mut published = 0;
    for client in [street, district, xueyuan, wujia] {
        let own = client
            .list_catalogs(None, "")
            .await
            .map_err(demo_error("list"))?;
        let codes: Vec<&str> = own.catalogs.iter().map(|c| c.code.as_str()).collect();
        client
            .publish(&codes)
            .await
            .map_err(demo_error("publish"))?;
        published += codes.len();
    }
    let revision = federation
        .node(CITY)?
        .directory()
        .map_or(0, |r| r.view(|s| s.revision));
    federation.wait_for_revision(revision).await?;
    println!(
        "the streets and the district published {published} catalogs in the directory; every node holds them"
    );

    // The city searches the directory for residents' ID numbers across every tier.
    let mut directory = city.directory().await?;
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

    // Roles, access requests and grants: who may see what of the streets' residents.
    let (city_code, district_code, street_code) = (
        city.code().clone(),
        district.code().clone(),
        street.code().clone(),
    );
    let mut policy =
        sample::three_tier_policies(&city_code, &district_code, &street_code, "2099-12-31");
    policy.extend(wider_grants(
        &city_code,
        &district_code,
        &street_code,
        wujia.code(),
    ));
    for (issuer, command) in policy {
        federation
            .issue(
                &issuer,
                vec![tierlink_node::directory::DirectoryCommand::Policy(command)],
            )
            .await?;
    }
    let analyst = format!("{city_code}/ps-analyst");
    let officer = format!("{district_code}/civil-affairs");
    let worker = format!("{street_code}/grid-worker");
    let as_principal = |code: &NodeCode, name: &str, role: &str, purpose: &str| {
        let token = federation.add_principal(code, name, &[role])?;
        Ok::<_, CliError>(Some(tierlink_proto::v1::Credential {
            principal: name.into(),
            token,
            role: role.into(),
            purpose: purpose.into(),
            grant: String::new(),
        }))
    };
    let zhao = as_principal(&city_code, "zhao", &analyst, sample::SECURITY_CHECK)?;
    let li = as_principal(&district_code, "li", &officer, sample::ALLOWANCE_REVIEW)?;
    let wang = as_principal(&street_code, "wang", &worker, sample::ALLOWANCE_REVIEW)?;
    println!(
        "\nroles, access requests and grants are in the directory; principals zhao@{city_code} (city public security), li@{district_code} (district civil affairs) and wang@{street_code} (street grid worker) hold tokens"
    );

    // Reads across the tiers, each by a principal, each verified batch by batch.
    let query = |catalog: &str,
                 target: &NodeCode,
                 asker: &Option<tierlink_proto::v1::Credential>| QueryRequest {
        scope: Some(ReadScope {
            catalog: catalog.into(),
            target: target.to_string(),
            credential: asker.clone(),
            ..Default::default()
        }),
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
            .read(via, request, |_, _| Ok(()))
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
    exchange(district, None, query(RESIDENTS, street.code(), &li)).await?;
    exchange(district, None, query(BUILDINGS, street.code(), &li)).await?;
    exchange(city, None, query(RESIDENTS, street.code(), &zhao)).await?;
    exchange(
        city,
        Some(district.code()),
        query(RESIDENTS, street.code(), &zhao),
    )
    .await?;
    let mut floating = query(RESIDENTS, street.code(), &li);
    floating.r#where = vec![tierlink_proto::v1::FieldEquals {
        item: "floating".into(),
        value: "true".into(),
    }];
    exchange(district, None, floating).await?;
    exchange(
        city,
        Some(wujiagang.code()),
        query(RESIDENTS, wujia.code(), &zhao),
    )
    .await?;
    exchange(street, None, query(RESIDENTS, street.code(), &wang)).await?;

    // The city keeps what it got through the district, and checks it later with the CA alone.
    let export = root.join("city-residents-via-district.tlb");
    let mut writer = BatchWriter::create(&export)?;
    city.read(
        Some(district.code()),
        query(RESIDENTS, street.code(), &zhao),
        |batch, _| {
            writer
                .write(&batch)
                .map_err(|e| tierlink_client::ClientError::Io(e.to_string()))
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
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: street.code().to_string(),
            credential: li.clone(),
            ..Default::default()
        }),
        key: format!("P{}0000000", street.code()),
    };
    district
        .read(None, history, |_, v| {
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
        Err(status) => tierlink_client::ClientError::from(status).to_string(),
    };

    println!(
        "\n{:<10} {:<20} {:<10} {:<11} {:<18} {:<18} {:>8} {:>8}  {:<10} {:>7}  where",
        "node",
        "principal",
        "producer",
        "path",
        "catalog",
        "grant",
        "records",
        "batches",
        "signatures",
        "time"
    );
    for e in &exchanges {
        let s = &e.summary;
        println!(
            "{:<10} {:<20} {:<10} {:<11} {:<18} {:<18} {:>8} {:>8}  {:<10} {:>4} ms  {}",
            e.asker,
            s.principal,
            s.producer,
            e.path,
            s.catalog,
            s.grant,
            s.records,
            s.batches,
            "verified",
            e.millis,
            e.conditions
        );
    }
    let through_district = format!("via {}", district.code());
    if let Some(relayed) = exchanges.iter().find(|e| e.path == through_district) {
        println!(
            "\nthrough the district, the street's batches arrive as the street signed them, sealed to {} (served to {}'s principal {}): the district verifies them and reads nothing",
            relayed.summary.sealed_to, relayed.summary.consumer, relayed.summary.principal
        );
    }
    println!(
        "exported {}: verified offline with ca.crt alone, {} records in {} batches signed by {}, sealed to {} (only its key opens them)",
        export.display(),
        offline.records,
        offline.batches,
        offline.producer,
        offline.sealed_to
    );
    println!("one byte changed in a copy: rejected ({rejection})");
    println!(
        "history of P{}0000000 at the street: versions {versions:?}",
        street.code()
    );
    println!("the district writing to the street: refused ({refusal})");

    let first = first_in_community(street).await?;
    // The grid worker's grant sends keys hashed: the demo, holding the federation key, knows
    // which hashed key is the resident's.
    let hashed = Redactor::new(federation.node(XILING_STREET)?.dir.hash_key()?)
        .apply_str(Action::Hash, &first.1.key);
    three_views(
        street,
        &first,
        [
            (city, &zhao, Find::IdNumber),
            (district, &li, Find::Key),
            (street, &wang, Find::HashedKey(hashed)),
        ],
    )
    .await?;

    // Who saw the resident's ID number, under which grant: one command at the street.
    let street_node = super::NodeArg {
        node: federation.node(XILING_STREET)?.dir.dir.clone(),
    };
    println!(
        "\n$ tierlink audit query --node <street> --item id_number --key {}",
        first.1.key
    );
    super::audit::run(super::audit::AuditCommand::Query {
        node: street_node.clone(),
        catalog: None,
        principal: None,
        item: Some("id_number".into()),
        key: Some(first.1.key.clone()),
        since: None,
        refused: false,
        limit: 20,
        json: false,
    })
    .await?;
    println!("\n$ tierlink audit anchor --node <street> && tierlink audit verify --node <street>");
    super::audit::run(super::audit::AuditCommand::Anchor(street_node.clone())).await?;
    super::audit::run(super::audit::AuditCommand::Verify(street_node)).await?;

    let legacy = postgres::show(
        street,
        federation.node(XILING_STREET)?.dir.clone(),
        federation.node(XILING)?.dir.clone(),
        &li,
        args.buildings,
        args.webhook_receiver.as_deref(),
    )
    .await?;

    cases::show(&federation, (city, district, street), &residents, &register).await?;

    println!(
        "\nthe directory, seen from {} (a street, following its district):",
        street.code()
    );
    let mut at_street = street.directory().await?;
    super::directory::print_status(&mut at_street).await?;
    println!(
        "\ndone in {:.1} s; every batch verified.",
        started.elapsed().as_secs_f64()
    );

    if args.serve {
        let manifest = federation.write_manifest()?;
        println!(
            "\nserving; connection details for any gRPC or HTTPS client in {}",
            manifest.display()
        );
        for node in &federation.nodes {
            if let Some(url) = node.gateway_url() {
                println!(
                    "  {} REST gateway {url} (operations under /v1, reference {url}/docs/; trust {})",
                    node.dir.code(),
                    node.dir.path(&node.dir.config.files.ca).display()
                );
            }
        }
        if let Some(legacy) = &legacy {
            println!(
                "  PostgreSQL {}: rows changed in civil_buildings reach district_buildings through the street's feed",
                legacy.postgres.url()
            );
        }
        println!("press Ctrl-C to stop");
        shutdown_signal().await;
    }
    drop(legacy);
    federation.stop().await?;
    Ok(())
}
