//! The demo's legacy database: the street's buildings kept in a PostgreSQL table by a bureau
//! system, read into the street's catalog by the source connector, and followed by the district
//! into a table of its own through the feed, as its civil-affairs officer, and, when a receiver
//! is given, by a signed webhook. A rename and a deletion in the street's table reach both.

use std::time::{Duration, Instant};

use tierlink_client::NodeClient;
use tierlink_connect::postgres::sink::{Sink, SinkSpec};
use tierlink_connect::postgres::source::{Source, SourceSpec};
use tierlink_connect::postgres::{self as pg};
use tierlink_proto::v1::AddWebhookRequest;
use tierlink_proto::v1::webhooks_client::WebhooksClient;
use tierlink_proto::v1::{Credential, ReadScope};
use tierlink_sandbox::postgres::{LocalPostgres, PostgresError};
use tierlink_sandbox::sample;
use tokio::task::JoinHandle;

use super::{BUILDINGS, CliError};

/// The street's table, as a bureau system keeps it: the catalog's items as columns, floors and
/// households as integers, and the time of the last change.
const STREET_TABLE: &str = "CREATE TABLE civil_buildings (
    building_code text PRIMARY KEY, community_code text, compound text, building_name text,
    address text, building_head text, building_head_phone text, security_lead text,
    floors integer, households integer, residents text, floating_residents text, grid_code text,
    longitude text, latitude text, modified_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON civil_buildings (modified_at, building_code);
    CREATE TABLE district_buildings (
    building_code text PRIMARY KEY, community_code text, building_name text, address text,
    floors integer, households integer);";

/// The database and the connectors left running for `demo --serve`.
pub struct Running {
    pub postgres: LocalPostgres,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn failed(what: &str) -> impl FnOnce(tierlink_connect::ConnectError) -> CliError + '_ {
    move |e| CliError::Demo(format!("{what}: {e}"))
}

/// Runs the part; `None`, saying why, where PostgreSQL's server programs are not installed.
pub async fn show(
    street: &NodeClient,
    street_dir: tierlink_core::config::NodeDir,
    district_dir: tierlink_core::config::NodeDir,
    li: &Option<Credential>,
    buildings: usize,
    receiver: Option<&str>,
) -> Result<Option<Running>, CliError> {
    let postgres = match LocalPostgres::start() {
        Ok(p) => p,
        Err(PostgresError::NotInstalled) => {
            println!(
                "\n(the legacy-database part is left out: {})",
                PostgresError::NotInstalled
            );
            return Ok(None);
        }
        Err(e) => return Err(CliError::Demo(format!("PostgreSQL: {e}"))),
    };
    let url = postgres.url();
    let db = pg::connect(&url).await.map_err(failed("PostgreSQL"))?;
    db.batch_execute(STREET_TABLE)
        .await
        .map_err(|e| CliError::Demo(format!("PostgreSQL: {e}")))?;
    // The bureau's table holds what the street's catalog holds.
    let rows = sample::buildings(street.code().as_str(), buildings, 2);
    let insert = "INSERT INTO civil_buildings VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
        $9::text::integer, $10::text::integer, $11, $12, $13, $14, $15)";
    for row in &rows {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            row.iter().map(|v| v as _).collect();
        db.execute(insert, &params)
            .await
            .map_err(|e| CliError::Demo(format!("PostgreSQL: {e}")))?;
    }
    println!(
        "\na bureau system's table at the street, in PostgreSQL ({url}): civil_buildings, {} rows",
        rows.len()
    );
    let spec = SourceSpec {
        catalog: BUILDINGS.into(),
        table: "civil_buildings".into(),
        key: "building_code".into(),
        updated_at: "modified_at".into(),
        lag: Duration::from_millis(200),
        page_rows: 500,
        mapping: None,
    };
    println!(
        "$ tierlink connect postgres source --node <street> --catalog {BUILDINGS} --table civil_buildings --key building_code --updated-at modified_at --lag 200ms --once"
    );
    // The rows just written are read once the lag has passed.
    tokio::time::sleep(spec.lag).await;
    let mut source = Source::open(spec.clone(), &url, street)
        .await
        .map_err(failed("the source"))?;
    let mut read = 0;
    while let n @ 1.. = source.step().await.map_err(failed("the source"))? {
        read += n;
    }
    println!(
        "  {read} rows read, written with the offset after them ({}); the catalog held them already: no new version",
        source.offset().encode()
    );

    let scope = ReadScope {
        catalog: BUILDINGS.into(),
        target: street.code().to_string(),
        credential: li.clone(),
        ..Default::default()
    };
    println!(
        "\nthe district keeps its own table of the street's buildings, as li (civil affairs) may see them:\n$ tierlink connect postgres sink --node <district> --target {} --catalog {BUILDINGS} --as li ... --table district_buildings --snapshot",
        street.code()
    );
    let sink_url = url.clone();
    let sink_dir = district_dir.clone();
    let sink = tokio::spawn(async move {
        let client = match NodeClient::open(sink_dir) {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "the demo's sink"),
        };
        let spec = SinkSpec {
            name: None,
            table: "district_buildings".into(),
            scope,
            via: None,
            mapping: None,
            snapshot: true,
        };
        let ran = match Sink::open(spec, &sink_url, &client).await {
            Ok(mut sink) => sink.run(std::future::pending()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ran {
            tracing::error!(error = %e, "the demo's sink stopped");
        }
    });
    let count = async |sql: &str| -> Result<i64, CliError> {
        db.query_one(sql, &[])
            .await
            .map(|r| r.get(0))
            .map_err(|e| CliError::Demo(format!("PostgreSQL: {e}")))
    };
    let wait = async |what: &str, sql: &str, want: i64| -> Result<Duration, CliError> {
        let started = Instant::now();
        while count(sql).await? != want {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(CliError::Demo(format!("{what} did not arrive in a minute")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(started.elapsed())
    };
    wait(
        "the snapshot",
        "SELECT count(*) FROM district_buildings",
        rows.len() as i64,
    )
    .await?;
    println!("  district_buildings: {} rows", rows.len());

    if let Some(url) = receiver {
        webhook(&district_dir, street, li, url).await?;
    }

    let (renamed, gone) = (&rows[0][0], &rows[1][0]);
    println!(
        "\nthe street's clerk renames building {renamed} and removes {gone} in the bureau's table:"
    );
    db.execute(
        "UPDATE civil_buildings SET building_name = '新华里1栋', modified_at = now() WHERE building_code = $1",
        &[renamed],
    )
    .await
    .map_err(|e| CliError::Demo(format!("PostgreSQL: {e}")))?;
    db.execute(
        "DELETE FROM civil_buildings WHERE building_code = $1",
        &[gone],
    )
    .await
    .map_err(|e| CliError::Demo(format!("PostgreSQL: {e}")))?;
    let committed = Instant::now();
    tokio::time::sleep(spec.lag).await;
    let mut read = 0;
    while let n @ 1.. = source.step().await.map_err(failed("the source"))? {
        read += n;
    }
    let deleted = source.reconcile().await.map_err(failed("the source"))?;
    println!("  the source: {read} row read, {deleted} record of a row gone deleted");
    wait(
        "the rename",
        "SELECT count(*) FROM district_buildings WHERE building_name = '新华里1栋'",
        1,
    )
    .await?;
    wait(
        "the deletion",
        "SELECT count(*) FROM district_buildings",
        rows.len() as i64 - 1,
    )
    .await?;
    println!(
        "  the district's table has both, {} ms after the commit (the source's lag is 200 ms)",
        committed.elapsed().as_millis()
    );

    // Left running for `--serve`: changes to civil_buildings reach district_buildings.
    let source_task = tokio::spawn(async move {
        let client = match NodeClient::open(street_dir) {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "the demo's source"),
        };
        let ran = match Source::open(spec, &url, &client).await {
            Ok(mut source) => {
                source
                    .run(
                        Duration::from_millis(200),
                        Some(Duration::from_secs(10)),
                        std::future::pending(),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = ran {
            tracing::error!(error = %e, "the demo's source stopped");
        }
    });
    Ok(Some(Running {
        postgres,
        tasks: vec![sink, source_task],
    }))
}

/// The district's officer gets the street's building changes at `url` as signed webhooks too.
async fn webhook(
    district: &tierlink_core::config::NodeDir,
    street: &NodeClient,
    li: &Option<Credential>,
    url: &str,
) -> Result<(), CliError> {
    println!(
        "\nand as webhooks, for a system that takes an HTTP POST and nothing else:\n$ tierlink webhook add --node <district> --target {} --catalog {BUILDINGS} --as li ... --url {url}",
        street.code()
    );
    let channel =
        tierlink_client::channel(&district.credentials()?, &district.config.server.endpoint)
            .await?;
    let added = WebhooksClient::new(channel)
        .add(AddWebhookRequest {
            catalog: BUILDINGS.into(),
            target: street.code().to_string(),
            credential: li.clone(),
            url: url.into(),
            hmac: false,
            from: String::new(),
        })
        .await
        .map_err(|s| CliError::Client(s.into()))?
        .into_inner();
    println!(
        "  webhook {} added; the receiver checks each delivery's v1a signature with the district's signing certificate ({})",
        added.id,
        district.path(&district.config.files.signing_cert).display()
    );
    Ok(())
}
