//! The PostgreSQL connector against a real server of its own (Debian's postgresql package):
//! a street's table read into its buildings catalog, and the district's copy of it kept by a
//! sink that follows the street's feed as a district officer. Rows committed out of order, rows
//! sharing a timestamp across a restart, connectors killed mid-batch, the server restarted, and
//! deleted rows: nothing lost, nothing applied twice.

mod util;

use std::time::Duration;

use tierlink_client::NodeClient;
use tierlink_connect::ConnectError;
use tierlink_connect::postgres::sink::{Sink, SinkSpec};
use tierlink_connect::postgres::source::{Source, SourceSpec};
use tierlink_proto::v1::ReadScope;
use tierlink_sandbox::postgres::LocalPostgres;
use tierlink_sandbox::sample;
use tokio_postgres::Client;
use util::*;

const STREET_CODE: &str = "420502001";

/// The street's legacy table: the buildings catalog's items as columns (floors and households
/// as integers, as a bureau system keeps them) and the application's updated-at.
const STREET_TABLE: &str = "
    CREATE TABLE street_buildings (
        building_code text PRIMARY KEY, community_code text, compound text, building_name text,
        address text, building_head text, building_head_phone text, security_lead text,
        floors integer, households integer, residents text, floating_residents text,
        grid_code text, longitude text, latitude text,
        updated_at timestamptz NOT NULL DEFAULT now());
    -- The district's copy, kept by the sink, and every change applied to it, by a trigger: a
    -- version applied twice would show twice.
    CREATE TABLE district_buildings (
        building_code text PRIMARY KEY, community_code text, compound text, building_name text,
        address text, floors integer, households integer);
    CREATE TABLE applied (n bigserial, building_code text, op text);
    CREATE FUNCTION log_applied() RETURNS trigger AS $$ BEGIN
        INSERT INTO applied (building_code, op)
        VALUES (coalesce(NEW.building_code, OLD.building_code), TG_OP);
        RETURN NULL; END $$ LANGUAGE plpgsql;
    CREATE TRIGGER applied AFTER INSERT OR UPDATE OR DELETE ON district_buildings
        FOR EACH ROW EXECUTE FUNCTION log_applied();";

struct Setup {
    f: Fixture,
    open: Open,
    pg: LocalPostgres,
    db: Client,
}

async fn setup() -> Setup {
    let f = federation(0).await;
    let open = open_policies(&f).await;
    let pg = LocalPostgres::start().expect("a local PostgreSQL server");
    let db = tierlink_connect::postgres::connect(&pg.url())
        .await
        .unwrap();
    db.batch_execute(STREET_TABLE).await.unwrap();
    Setup { f, open, pg, db }
}

/// Inserts sample buildings `from..to` (the street's fixture holds the first 50), committed.
async fn insert(db: &Client, from: usize, to: usize) {
    for row in sample::buildings(STREET_CODE, to, 8).split_off(from) {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            row.iter().map(|v| v as _).collect();
        db.execute(INSERT, &params).await.unwrap();
    }
}

const INSERT: &str = "INSERT INTO street_buildings VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
    $9::text::integer, $10::text::integer, $11, $12, $13, $14, $15)";

fn spec(lag: Duration, page_rows: usize) -> SourceSpec {
    SourceSpec {
        catalog: BUILDINGS.into(),
        table: "street_buildings".into(),
        key: "building_code".into(),
        updated_at: "updated_at".into(),
        lag,
        page_rows,
        mapping: None,
    }
}

/// The district officer's sink of the street's buildings into `table`, from a snapshot.
fn district_sink(table: &str, officer: &Option<tierlink_proto::v1::Credential>) -> SinkSpec {
    SinkSpec {
        name: None,
        table: table.into(),
        scope: ReadScope {
            catalog: BUILDINGS.into(),
            target: STREET_CODE.into(),
            credential: officer.clone(),
            ..Default::default()
        },
        via: None,
        mapping: None,
        snapshot: true,
    }
}

/// Pages until the source has caught up; returns the rows read.
async fn catch_up(source: &mut Source<'_>) -> usize {
    let mut rows = 0;
    loop {
        match source.step().await.unwrap() {
            0 => return rows,
            n => rows += n,
        }
    }
}

/// The street's current buildings: key → (version, building name).
async fn held(street: &NodeClient) -> std::collections::BTreeMap<String, (u64, String)> {
    let mut held = std::collections::BTreeMap::new();
    let query = tierlink_proto::v1::QueryRequest {
        scope: Some(ReadScope {
            catalog: BUILDINGS.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    street
        .read(None, query, |_, batch| {
            let name = batch
                .header
                .columns
                .iter()
                .position(|c| c == "building_name")
                .unwrap();
            for r in batch.records {
                held.insert(r.key, (r.version, r.values[name].clone()));
            }
            Ok(())
        })
        .await
        .unwrap();
    held
}

/// Versions the street's change log holds for buildings: each written once, none again.
fn positions(s: &Setup) -> u64 {
    let store = s.f.federation.nodes[STREET].store().unwrap();
    store.change_log(BUILDINGS).unwrap().last
}

#[tokio::test(flavor = "multi_thread")]
async fn a_street_table_reaches_the_districts_table_through_the_feed_deletions_included() {
    let s = setup().await;
    insert(&s.db, 0, 80).await;
    let street = &s.f.clients[STREET];
    let mut source = Source::open(spec(Duration::ZERO, 25), &s.pg.url(), street)
        .await
        .unwrap();
    assert_eq!(catch_up(&mut source).await, 80);
    // The fixture's 50 were already there with the same values: only 30 are new versions.
    assert_eq!(positions(&s), 80);
    assert_eq!(held(street).await.len(), 80);

    // The district follows the street's buildings into its own table, as its officer.
    let sink_spec = district_sink("district_buildings", &s.open.district);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let url = s.pg.url();
    let sink = {
        let dir = s.f.federation.nodes[DISTRICT].dir.clone();
        let spec = sink_spec.clone();
        tokio::spawn(async move {
            let client = NodeClient::open(dir).unwrap();
            let mut sink = Sink::open(spec, &url, &client).await.unwrap();
            sink.run(async {
                stopped.await.ok();
            })
            .await
        })
    };
    let count = |sql: &'static str| {
        let db = &s.db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    wait_for(|| async { count("SELECT count(*) FROM district_buildings").await == 80 }).await;

    // A change and a deletion at the street reach the district's table.
    s.db
        .execute(
            "UPDATE street_buildings SET building_name = 'renamed', updated_at = now() WHERE building_code = $1",
            &[&format!("{STREET_CODE}004-B0003")],
        )
        .await
        .unwrap();
    let gone = format!("{STREET_CODE}002-B0009");
    s.db.execute(
        "DELETE FROM street_buildings WHERE building_code = $1",
        &[&gone],
    )
    .await
    .unwrap();
    assert_eq!(catch_up(&mut source).await, 1);
    assert_eq!(source.reconcile().await.unwrap(), 1);
    assert_eq!(source.reconcile().await.unwrap(), 0, "nothing more is gone");
    let store = s.f.federation.nodes[STREET].store().unwrap();
    let history = store.history(BUILDINGS, &gone).unwrap();
    assert!(history.last().unwrap().decode().unwrap().deleted);
    wait_for(|| async {
        count("SELECT count(*) FROM district_buildings WHERE building_name = 'renamed'").await == 1
            && count("SELECT count(*) FROM district_buildings").await == 79
    })
    .await;
    stop.send(()).unwrap();
    sink.await.unwrap().unwrap();
    // Each version applied once: 80 inserts, one update, one delete.
    let ops =
        s.db.query(
            "SELECT op, count(*) FROM applied GROUP BY op ORDER BY op",
            &[],
        )
        .await
        .unwrap();
    let ops: Vec<(String, i64)> = ops.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        ops,
        [
            ("DELETE".to_owned(), 1),
            ("INSERT".to_owned(), 80),
            ("UPDATE".to_owned(), 1)
        ]
    );
    // The integers came through as the table's type.
    let floors: i32 =
        s.db.query_one("SELECT floors FROM district_buildings LIMIT 1", &[])
            .await
            .unwrap()
            .get(0);
    assert!(floors > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_committed_after_later_ones_is_not_skipped_even_with_no_lag() {
    let s = setup().await;
    let street = &s.f.clients[STREET];
    let mut source = Source::open(spec(Duration::ZERO, 100), &s.pg.url(), street)
        .await
        .unwrap();
    // A transaction stamps its row, and stays open while another commits a later one.
    let slow = tierlink_connect::postgres::connect(&s.pg.url())
        .await
        .unwrap();
    slow.batch_execute("BEGIN").await.unwrap();
    let early = sample::buildings(STREET_CODE, 51, 8).pop().unwrap();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        early.iter().map(|v| v as _).collect();
    slow.execute(INSERT, &params).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    insert(&s.db, 51, 53).await;
    // The later rows wait for the open transaction: reading them now would move the offset past
    // the row it has yet to commit.
    assert_eq!(catch_up(&mut source).await, 0);
    slow.batch_execute("COMMIT").await.unwrap();
    assert_eq!(catch_up(&mut source).await, 3);
    let held = held(street).await;
    assert_eq!(held.len(), 53, "the early row and both later ones");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_sharing_a_timestamp_are_read_once_across_a_restart() {
    let s = setup().await;
    insert(&s.db, 50, 60).await;
    s.db.execute(
        "UPDATE street_buildings SET updated_at = '2026-11-30 08:00:00+00'",
        &[],
    )
    .await
    .unwrap();
    let street = &s.f.clients[STREET];
    let before = positions(&s);
    {
        let mut source = Source::open(spec(Duration::ZERO, 3), &s.pg.url(), street)
            .await
            .unwrap();
        assert_eq!(source.step().await.unwrap(), 3);
        assert_eq!(source.step().await.unwrap(), 3);
    }
    // Started again, it reads on from the sixth row of the same instant.
    let mut source = Source::open(spec(Duration::ZERO, 3), &s.pg.url(), street)
        .await
        .unwrap();
    assert_eq!(source.offset().updated_at, "2026-11-30 08:00:00+00");
    assert_eq!(catch_up(&mut source).await, 4);
    assert_eq!(positions(&s) - before, 10, "each row written once");
    assert_eq!(held(street).await.len(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_killed_mid_batch_resumes_with_no_gap_and_no_repeat() {
    let s = setup().await;
    insert(&s.db, 50, 650).await;
    let street_dir = s.f.federation.nodes[STREET].dir.clone();
    let before = positions(&s);
    // Killed again and again wherever it is (reading, sending, awaiting the node's answer),
    // then started afresh from what the node stored.
    for kill_after_ms in [5, 13, 29, 41, 3, 57] {
        let url = s.pg.url();
        let dir = street_dir.clone();
        let run = tokio::spawn(async move {
            let client = NodeClient::open(dir).unwrap();
            let mut source = Source::open(spec(Duration::ZERO, 40), &url, &client)
                .await
                .unwrap();
            source
                .run(Duration::from_millis(10), None, std::future::pending())
                .await
        });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        run.abort();
        let _ = run.await;
    }
    let street = &s.f.clients[STREET];
    let mut source = Source::open(spec(Duration::ZERO, 40), &s.pg.url(), street)
        .await
        .unwrap();
    catch_up(&mut source).await;
    assert_eq!(held(street).await.len(), 650);
    assert_eq!(positions(&s) - before, 600, "each new row written once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_source_of_the_same_table_is_refused_and_writes_nothing() {
    let s = setup().await;
    insert(&s.db, 50, 60).await;
    let street = &s.f.clients[STREET];
    let mut first = Source::open(spec(Duration::ZERO, 5), &s.pg.url(), street)
        .await
        .unwrap();
    let mut second = Source::open(spec(Duration::ZERO, 5), &s.pg.url(), street)
        .await
        .unwrap();
    assert_eq!(first.step().await.unwrap(), 5);
    let err = second.step().await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Node(_))
            && err.to_string().contains("one connector per source"),
        "{err}"
    );
    assert_eq!(catch_up(&mut first).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_restarting_under_a_running_source_loses_nothing() {
    let s = setup().await;
    insert(&s.db, 50, 70).await;
    let url = s.pg.url();
    let dir = s.f.federation.nodes[STREET].dir.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        let client = NodeClient::open(dir).unwrap();
        let mut source = Source::open(spec(Duration::ZERO, 10), &url, &client)
            .await
            .unwrap();
        source
            .run(Duration::from_millis(20), None, async {
                stopped.await.ok();
            })
            .await
    });
    let street = &s.f.clients[STREET];
    wait_for(|| async { held(street).await.len() == 70 }).await;
    drop(s.db);
    s.pg.stop(false).unwrap();
    s.pg.start_again().unwrap();
    let db = tierlink_connect::postgres::connect(&s.pg.url())
        .await
        .unwrap();
    insert(&db, 70, 90).await;
    wait_for(|| async { held(street).await.len() == 90 }).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

/// Waits for `done` to hold, checking every 50 ms, for at most a minute.
async fn wait_for<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_naming_more_than_one_row_is_refused_and_local_times_are_read_in_the_databases_zone()
{
    let s = setup().await;
    let street = &s.f.clients[STREET];
    // Buildings keyed by community and building: the building code alone names several rows.
    s.db.batch_execute(
        "CREATE TABLE composite (LIKE street_buildings INCLUDING DEFAULTS,
                PRIMARY KEY (community_code, building_code))",
    )
    .await
    .unwrap();
    let composite = SourceSpec {
        table: "composite".into(),
        ..spec(Duration::ZERO, 10)
    };
    let err = Source::open(composite, &s.pg.url(), street)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("is not its primary key nor a unique, not-null column"),
        "{err}"
    );

    // An application writing local times, in Shanghai, to a timestamp without a zone.
    s.db.batch_execute(
        "ALTER DATABASE postgres SET timezone TO 'Asia/Shanghai';
             CREATE TABLE local_buildings (LIKE street_buildings, PRIMARY KEY (building_code));
             ALTER TABLE local_buildings ALTER updated_at TYPE timestamp,
                ALTER updated_at SET DEFAULT now();",
    )
    .await
    .unwrap();
    let db = tierlink_connect::postgres::connect(&s.pg.url())
        .await
        .unwrap();
    for row in sample::buildings(STREET_CODE, 55, 8).split_off(50) {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            row.iter().map(|v| v as _).collect();
        db.execute(
            &INSERT.replace("street_buildings", "local_buildings"),
            &params,
        )
        .await
        .unwrap();
    }
    let local = SourceSpec {
        table: "local_buildings".into(),
        ..spec(Duration::ZERO, 10)
    };
    let mut source = Source::open(local, &s.pg.url(), street).await.unwrap();
    assert_eq!(
        catch_up(&mut source).await,
        5,
        "read now, not hours from now"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sink_of_the_same_name_is_refused_while_the_first_runs() {
    let s = setup().await;
    let district = &s.f.clients[DISTRICT];
    let spec = |table: &str| district_sink(table, &s.open.district);
    let first = Sink::open(spec("district_buildings"), &s.pg.url(), district)
        .await
        .unwrap();
    // The same table however it is named: the sink's name is the table's as the database
    // writes it.
    let err = Sink::open(spec("public.district_buildings"), &s.pg.url(), district)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("another sink named \"public.district_buildings\""),
        "{err}"
    );
    drop(first);
    // Let go with its connection.
    wait_for(|| async {
        Sink::open(spec("district_buildings"), &s.pg.url(), district)
            .await
            .is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_integer_key_pages_in_number_order_each_row_once() {
    let s = setup().await;
    let street = &s.f.clients[STREET];
    // A bureau's own serial number as the key, left out of the records by the mapping.
    s.db.batch_execute("CREATE TABLE numbered (id integer PRIMARY KEY, LIKE street_buildings);")
        .await
        .unwrap();
    for (n, row) in sample::buildings(STREET_CODE, 62, 8)
        .split_off(50)
        .into_iter()
        .enumerate()
    {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        let id = n as i32 + 1;
        params.push(&id);
        params.extend(
            row.iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        s.db.execute(
            "INSERT INTO numbered VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                    $10::text::integer, $11::text::integer, $12, $13, $14, $15, $16,
                    '2026-11-30 08:00:00+00')",
            &params,
        )
        .await
        .unwrap();
    }
    let numbered = SourceSpec {
        table: "numbered".into(),
        key: "id".into(),
        mapping: Some(
            tierlink_core::import::Mapping::parse("[columns]\n\"id\" = false\n").unwrap(),
        ),
        ..spec(Duration::ZERO, 5)
    };
    let mut source = Source::open(numbered, &s.pg.url(), street).await.unwrap();
    // 1 to 12 by number: as text, 10 would come before 2 and pages would read rows again.
    assert_eq!(catch_up(&mut source).await, 12);
    assert_eq!(source.offset().key, "12");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_and_sink_ride_out_a_restart_of_the_street_and_kills_of_the_sink() {
    let mut s = setup().await;
    insert(&s.db, 50, 80).await;
    let url = s.pg.url();
    let street_dir = s.f.federation.nodes[STREET].dir.clone();
    let source = tokio::spawn({
        let url = url.clone();
        async move {
            let client = NodeClient::open(street_dir).unwrap();
            let mut source = Source::open(spec(Duration::ZERO, 7), &url, &client)
                .await
                .unwrap();
            source
                .run(Duration::from_millis(20), None, std::future::pending())
                .await
        }
    });
    let district_dir = s.f.federation.nodes[DISTRICT].dir.clone();
    let credential = s.open.district.clone();
    let sink = move || {
        let (url, dir, credential) = (url.clone(), district_dir.clone(), credential.clone());
        tokio::spawn(async move {
            let client = NodeClient::open(dir).unwrap();
            let spec = district_sink("district_buildings", &credential);
            // The killed sink's session may still hold the name a moment.
            let mut sink = loop {
                match Sink::open(spec.clone(), &url, &client).await {
                    Ok(sink) => break sink,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            sink.run(std::future::pending()).await
        })
    };
    // The sink killed wherever it is, again and again, while rows keep coming.
    for (round, kill_after_ms) in [30u64, 7, 55, 13, 90].into_iter().enumerate() {
        let running = sink();
        insert(&s.db, 80 + round * 20, 100 + round * 20).await;
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        running.abort();
        let _ = running.await;
    }
    let running = sink();
    // The street restarts under both.
    s.f.federation.stop_node(STREET).await.unwrap();
    insert(&s.db, 180, 200).await;
    s.f.federation.start_node(STREET).await.unwrap();
    let count = |sql: &'static str| {
        let db = &s.db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    wait_for(|| async {
        count("SELECT count(*) FROM district_buildings").await
            == count("SELECT count(*) FROM street_buildings").await + 50
    })
    .await;
    // Every building inserted once, none applied again (an update would be a repeat).
    let ops =
        s.db.query(
            "SELECT op, count(*) FROM applied GROUP BY op ORDER BY op",
            &[],
        )
        .await
        .unwrap();
    let ops: Vec<(String, i64)> = ops.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(ops, [("INSERT".to_owned(), 200)]);
    running.abort();
    source.abort();
}
