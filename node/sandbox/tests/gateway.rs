//! The REST gateway end to end, over HTTPS on 127.0.0.1 with the federation CA as the only
//! trust: every operation round-trips; reads give what gRPC gives, are audited alike, and come
//! as signed batches that verify offline; errors are problem documents of a stable type.

mod util;

use reqwest::StatusCode;
use serde_json::{Map, Value};
use tierlink_core::identity::tokens::{ApiTokens, Issue, Scope};
use tierlink_core::signed::file::verify_file;
use tierlink_core::signed::{BatchVerifier, VerifiedBatch};
use tierlink_proto::v1::{QueryRequest, ReadScope};
use tierlink_sandbox::sample;
use tierlink_store::audit::{Outcome, Side};
use util::http::{FetchJson, Gateway, issue, ndjson, problem, reader, token, until, writer};
use util::*;

const STREET_CODE: &str = "420502001";
const RESIDENTS_PATH: &str = "/v1/catalogs/101001001/000001";

/// What gRPC gives a principal reading the street's residents, as the gateway's JSON records.
async fn over_grpc(
    f: &Fixture,
    n: usize,
    credential: Option<tierlink_proto::v1::Credential>,
) -> (Vec<Map<String, Value>>, String) {
    let request = QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: STREET_CODE.into(),
            credential,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut records = Vec::new();
    let summary = f.clients[n]
        .read(None, request, |_, batch: VerifiedBatch| {
            records.extend(batch.json_records());
            Ok(())
        })
        .await
        .unwrap();
    (records, summary.request_id)
}

/// `rows` of `columns` as the JSON objects a gateway write takes.
fn objects(columns: &[&str], rows: Vec<Vec<String>>) -> Vec<Value> {
    rows.into_iter()
        .map(|row| {
            Value::Object(
                columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.to_string(), Value::String(v)))
                    .collect(),
            )
        })
        .collect()
}

/// Every page of a JSON query, following `next`; the pages' request ids.
async fn pages(
    gw: &Gateway,
    token: &str,
    purpose: &str,
    limit: usize,
) -> (Vec<Map<String, Value>>, Vec<String>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![
            ("target", STREET_CODE.to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let response = reader(gw.get(&format!("{RESIDENTS_PATH}/records")), token, purpose)
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        assert_eq!(
            page["producer"], STREET_CODE,
            "the batches' signer is named"
        );
        assert_eq!(page["keys_hashed"], false);
        let got = page["records"].as_array().unwrap();
        assert!(got.len() <= limit);
        assert_eq!(page["count"].as_u64().unwrap() as usize, got.len());
        records.extend(got.iter().map(|r| r.as_object().unwrap().clone()));
        ids.push(page["request_id"].as_str().unwrap().to_owned());
        match page.get("next").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (records, ids),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_round_trips_over_https() {
    let f = federation(120).await;
    let open = open_policies(&f).await;
    let city = Gateway::of(&f, CITY);
    let street = Gateway::of(&f, STREET);

    // The document, the reference page and the problem pages need no token.
    let document: Value = city.get("/openapi.json").fetch_json().await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/v1/catalogs", "get"),
        ("/v1/catalogs/{prefix}/{number}", "get"),
        ("/v1/directory/catalogs", "get"),
        ("/v1/catalogs/{prefix}/{number}/records", "get"),
        ("/v1/catalogs/{prefix}/{number}/records", "post"),
        (
            "/v1/catalogs/{prefix}/{number}/records/{key}/history",
            "get",
        ),
        ("/v1/catalogs/{prefix}/{number}/explain", "get"),
        ("/v1/audit", "get"),
        ("/v1/catalogs/{prefix}/{number}/imports", "post"),
        ("/problems/{slug}", "get"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(operation["responses"].is_object());
    }
    assert!(document["components"]["schemas"]["ProblemDocument"].is_object());
    assert!(document["components"]["securitySchemes"]["token"].is_object());
    let page = city.get("/docs/").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    // Without its slash, the reference page's address leads there (reqwest follows redirects).
    let page = city.get("/docs").send().await.unwrap();
    assert_eq!(page.url().path(), "/docs/");
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let about = city.get("/problems/token-expired").send().await.unwrap();
    assert_eq!(about.status(), StatusCode::OK);
    assert!(about.text().await.unwrap().contains("Token expired"));

    // The city's staff analyst reads the street's residents through its own node.
    let staff = token(&f, CITY, "staff", Scope::Read);
    let auth = |r: reqwest::RequestBuilder| reader(r, &staff, EXCHANGE);
    let listed: Value = auth(city.get("/v1/catalogs").query(&[("target", STREET_CODE)]))
        .fetch_json()
        .await;
    assert_eq!(listed["node"], STREET_CODE);
    assert!(
        listed["catalogs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == RESIDENTS)
    );
    let entry: Value = auth(city.get(RESIDENTS_PATH).query(&[("target", STREET_CODE)]))
        .fetch_json()
        .await;
    assert_eq!(entry["code"], RESIDENTS);
    let found: Value = auth(city.get("/v1/directory/catalogs").query(&[("text", "id")]))
        .fetch_json()
        .await;
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["publisher"] == STREET_CODE && p["summary"]["code"] == RESIDENTS)
    );

    // Pages with a cursor give what one gRPC read gives, in the same order.
    let (grpc, _) = over_grpc(&f, CITY, open.city.clone()).await;
    assert_eq!(grpc.len(), 120);
    let (paged, ids) = pages(&city, &staff, EXCHANGE, 50).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(paged, grpc);
    // NDJSON streams the same records; a where condition narrows them as it does over gRPC.
    let (streamed, _) = ndjson(auth(
        city.get(&format!("{RESIDENTS_PATH}/records"))
            .query(&[("target", STREET_CODE)]),
    ))
    .await;
    assert_eq!(streamed, grpc);
    let sex = grpc[0]["sex"].as_str().unwrap().to_owned();
    let (women, _) = ndjson(auth(
        city.get(&format!("{RESIDENTS_PATH}/records"))
            .query(&[("target", STREET_CODE), ("where", &format!("sex={sex}"))]),
    ))
    .await;
    assert!(!women.is_empty() && women.len() < grpc.len());
    assert!(women.iter().all(|r| r["sex"] == sex.as_str()));

    // The signed batches themselves: a batch file that verifies with the CA alone.
    let response = auth(
        city.get(&format!("{RESIDENTS_PATH}/records"))
            .query(&[("target", STREET_CODE), ("batch_size", "40")]),
    )
    .header("Accept", "application/x-tierlink-batches")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request_id = response.headers()["tierlink-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.headers()["tierlink-producer"], STREET_CODE);
    let path = f.dir.path().join("city.tlb");
    std::fs::write(&path, response.bytes().await.unwrap()).unwrap();
    let ca = f.federation.nodes[CITY].dir.trusted_ca().unwrap();
    let summary = verify_file(&path, &BatchVerifier::new(ca)).unwrap();
    assert_eq!(
        (summary.records, summary.batches, summary.producer.as_str()),
        (120, 3, STREET_CODE)
    );
    assert_eq!(summary.request_id, request_id);
    assert_eq!(summary.sealed_to, "420500");

    // One key's history.
    let key = grpc[0]["_key"].as_str().unwrap();
    let history: Value = auth(
        city.get(&format!("{RESIDENTS_PATH}/records/{key}/history"))
            .query(&[("target", STREET_CODE)]),
    )
    .fetch_json()
    .await;
    assert_eq!(history["records"].as_array().unwrap().len(), 1);
    assert_eq!(history["records"][0], Value::Object(grpc[0].clone()));

    // Explain: the grant it would be decided under, item by item.
    let explained: Value = auth(
        city.get(&format!("{RESIDENTS_PATH}/explain"))
            .query(&[("target", STREET_CODE)]),
    )
    .fetch_json()
    .await;
    assert_eq!(explained["grant"], "analyst-101");
    assert_eq!(explained["keys_in_clear"], true);
    assert!(
        explained["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "clear")
    );

    // A clerk of the street writes records, all or none.
    f.federation
        .add_principal(
            f.clients[STREET].code(),
            "clerk",
            &["420502001/grid-worker"],
        )
        .unwrap();
    let clerk = writer(&f, STREET, "clerk", &[RESIDENTS]);
    let objects = objects(
        sample::RESIDENT_COLUMNS,
        sample::residents(STREET_CODE, 2, 99),
    );
    let written = street
        .post(&format!("{RESIDENTS_PATH}/records"))
        .bearer_auth(&clerk)
        .json(&objects)
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    let written: Value = written.json().await.unwrap();
    assert_eq!(written["written"], 2);
    let (after, _) = over_grpc(&f, CITY, open.city.clone()).await;
    assert_eq!(after.len(), 120 + usize::from(written["created"] == 2) * 2);

    // The gateway's read is audited as the gRPC read: the same entry on both ends, but for
    // the request id.
    let auditor = issue(&f, CITY, Issue::administrator(until()));
    let (_, grpc_id) = over_grpc(&f, CITY, open.city.clone()).await;
    let street_audit = f.federation.nodes[STREET].audit().unwrap();
    let by_gateway = audited(street_audit, |e| e.request_id == request_id).await;
    let by_grpc = audited(street_audit, |e| e.request_id == grpc_id).await;
    let decided = |e: &tierlink_store::audit::AuditEntry| {
        (
            e.principal.clone(),
            e.role.clone(),
            e.purpose.clone(),
            e.grant.clone(),
            e.items.clone(),
            e.consumer.clone(),
            e.outcome,
            e.kind.clone(),
        )
    };
    assert_eq!(decided(&by_gateway), decided(&by_grpc));
    assert_eq!(by_gateway.principal, "staff@420500");
    let entries: Value = city
        .get("/v1/audit")
        .bearer_auth(&auditor)
        .query(&[("principal", "staff@420500")])
        .fetch_json()
        .await;
    let entries = entries.as_array().unwrap();
    for id in [&request_id, &grpc_id] {
        assert!(
            entries
                .iter()
                .any(|e| &e["request_id"] == id && e["side"] == "consumer"),
            "the city's audit has no consumer entry for {id}"
        );
    }
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_token_writes_only_its_catalogs_the_administrators_reads_none_and_every_write_is_audited()
 {
    let f = federation(3).await;
    let street = Gateway::of(&f, STREET);
    for name in ["clerk", "registrar", "wang"] {
        f.federation
            .add_principal(f.clients[STREET].code(), name, &["420502001/grid-worker"])
            .unwrap();
    }
    let clerk = writer(&f, STREET, "clerk", &[BUILDINGS]);
    let registrar = writer(&f, STREET, "registrar", &[RESIDENTS]);
    let admin = issue(&f, STREET, Issue::administrator(until()));
    let post = |catalog: &str, token: &str, body: &[Value]| {
        street
            .post(&format!("/v1/catalogs/{catalog}/records"))
            .bearer_auth(token)
            .json(body)
            .send()
    };
    let buildings = objects(
        sample::BUILDING_COLUMNS,
        sample::buildings(STREET_CODE, 2, 71),
    );
    let residents = objects(
        sample::RESIDENT_COLUMNS,
        sample::residents(STREET_CODE, 2, 71),
    );

    // The buildings' records system writes buildings, and not residents: refused before the body
    // is read, nothing stored, and the refusal audited under its principal.
    let before = stored(&f, RESIDENTS).await;
    let (status, body) = problem(post(RESIDENTS, &clerk, &residents).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "/problems/scope-insufficient", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "writes only catalog {BUILDINGS} and not catalog {RESIDENTS}"
        )),
        "{detail}"
    );
    assert_eq!(stored(&f, RESIDENTS).await, before);
    let audit = f.federation.nodes[STREET].audit().unwrap();
    let refused = audited(audit, |e| {
        e.kind == "write" && e.principal == "clerk@420502001" && e.catalog == RESIDENTS
    })
    .await;
    assert_eq!(refused.outcome, Some(Outcome::Refused));
    assert_eq!(refused.side, Some(Side::Owner));
    assert!(refused.reason.contains("writes only"), "{}", refused.reason);

    let written = post(BUILDINGS, &clerk, &buildings).await.unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    let entry = audited(audit, |e| {
        e.kind == "write" && e.principal == "clerk@420502001" && e.catalog == BUILDINGS
    })
    .await;
    assert_eq!(entry.outcome, Some(Outcome::Served));
    assert_eq!(entry.records, 2);
    let keys: Vec<&str> = buildings
        .iter()
        .map(|b| b["building_code"].as_str().unwrap())
        .collect();
    assert_eq!(entry.keys, keys);
    assert!(
        entry.items["write"].iter().any(|i| i == "building_code"),
        "{:?}",
        entry.items
    );
    // Many bad records: the answer lists the first 1,000 problems and says how many there were.
    let bad: Vec<Value> = (0..1500)
        .map(|n| serde_json::json!({"building_code": format!("BAD-{n}")}))
        .collect();
    let (status, body) = problem(post(BUILDINGS, &clerk, &bad).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1000);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("(`errors` lists the first 1000)"),
        "{}",
        body["detail"]
    );
    // Whatever refuses a write its token may make is audited too: a body that is not JSON, one
    // sent as another media type, a file in a charset no one knows, a catalog not kept here.
    let records = format!("/v1/catalogs/{BUILDINGS}/records");
    let refusals = [
        (
            street
                .post(&records)
                .bearer_auth(&clerk)
                .header("content-type", "application/json")
                .body(r#"[{"building_code": "#),
            StatusCode::BAD_REQUEST,
            BUILDINGS,
        ),
        (
            street
                .post(&records)
                .bearer_auth(&clerk)
                .header("content-type", "text/plain")
                .body("[]"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BUILDINGS,
        ),
        (
            street
                .post(&format!("/v1/catalogs/{BUILDINGS}/imports"))
                .bearer_auth(&clerk)
                .header("content-type", "text/csv; charset=klingon")
                .body("building_code\n"),
            StatusCode::BAD_REQUEST,
            BUILDINGS,
        ),
        (
            street
                .post("/v1/catalogs/101001001/999999/records")
                .bearer_auth(&admin)
                .json(&buildings),
            StatusCode::NOT_FOUND,
            "101001001/999999",
        ),
    ];
    // A path that names no catalog is no write to audit.
    let (status, body) = problem(
        street
            .post(&format!("/v1/catalogs/abc/{}/records", "9".repeat(10_000)))
            .bearer_auth(&admin)
            .json(&buildings)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.to_string().len() < 2_000, "{body}");
    for (request, status, catalog) in refusals {
        let (got, body) = problem(request.send().await.unwrap()).await;
        assert_eq!(got, status, "{body}");
        let detail = body["detail"].as_str().unwrap().to_owned();
        let entry = audited(audit, |e| {
            e.kind == "write"
                && e.outcome == Some(Outcome::Refused)
                && !e.reason.is_empty()
                && (detail.contains(&e.reason) || e.reason.contains(&detail))
        })
        .await;
        assert_eq!(entry.catalog, catalog, "{detail}");
    }
    // A read token writes nothing.
    let reader_token = token(&f, STREET, "wang", Scope::Read);
    let (status, _) = problem(post(BUILDINGS, &reader_token, &buildings).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A writer sees the whole entry of the catalog it writes, items not shared included, and the
    // shared view of the others, as any member does.
    let items = |token: &str| {
        let request = street
            .get(&format!("/v1/catalogs/{RESIDENTS}"))
            .bearer_auth(token);
        async move {
            let entry: Value = request.send().await.unwrap().json().await.unwrap();
            entry["items"].as_array().unwrap().len()
        }
    };
    let (whole, shared) = (items(&registrar).await, items(&clerk).await);
    assert_eq!(whole, shared + 3, "residents keep three items not shared");
    assert_eq!(items(&admin).await, whole);

    // The administrator's token writes every catalog and reads the audit, but no records: those
    // are read as a principal, under grants.
    let written = post(RESIDENTS, &admin, &residents).await.unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    for path in [
        format!("/v1/catalogs/{RESIDENTS}/records"),
        format!("/v1/catalogs/{RESIDENTS}/explain"),
    ] {
        let (status, body) = problem(
            reader(street.get(&path), &admin, SECURITY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("reads no records"),
            "{body}"
        );
    }
    let entries: Vec<Value> = street
        .get("/v1/audit")
        .bearer_auth(&admin)
        .query(&[("catalog", RESIDENTS)])
        .fetch_json()
        .await;
    let writes: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "write")
        .map(|e| {
            (
                e["principal"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    // The fixture's own write over gRPC, the clerk's refusal, the administrator's write.
    assert_eq!(
        writes,
        [
            ("", "served"),
            ("clerk@420502001", "refused"),
            ("", "served")
        ],
        "{entries:?}"
    );
    // Read tokens never see the audit.
    let (status, _) = problem(
        street
            .get("/v1/audit")
            .bearer_auth(&registrar)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_keys_hashed_a_page_says_how_to_get_the_rest() {
    let f = federation(60).await;
    let tokens = with_policies(&f).await;
    let city = Gateway::of(&f, CITY);
    let zhao = token(&f, CITY, "zhao", Scope::Read);
    let records = |query: Vec<(&'static str, String)>| {
        reader(
            city.get(&format!("{RESIDENTS_PATH}/records")),
            &zhao,
            SECURITY,
        )
        .query(&[("target", STREET_CODE.to_owned())])
        .query(&query)
    };
    let page: Value = records(vec![("limit", "25".into())]).fetch_json().await;
    assert_eq!(page["keys_hashed"], true);
    assert_eq!(page["count"], 25);
    assert!(page.get("next").is_none());
    assert!(
        page["rest"]
            .as_str()
            .unwrap()
            .contains("application/x-ndjson")
    );
    // The first page is the start of the whole answer, in hashed-key order.
    let (all, _) = ndjson(records(vec![])).await;
    let credential = credential("zhao", &tokens.city, "420500/ps-analyst", SECURITY);
    let (grpc, _) = over_grpc(&f, CITY, credential).await;
    assert_eq!(all, grpc);
    assert_eq!(all.len(), 60);
    assert_eq!(
        page["records"].as_array().unwrap()[..],
        all[..25]
            .iter()
            .cloned()
            .map(Value::Object)
            .collect::<Vec<_>>()[..]
    );
    // A key bound is refused: it would sort the hidden keys.
    let cursor = base64_cursor(all[24]["_key"].as_str().unwrap());
    let (status, body) = problem(records(vec![("cursor", cursor)]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "/problems/permission-denied");
    assert!(
        body["detail"].as_str().unwrap().contains("hashed"),
        "{body}"
    );
    f.federation.stop().await.unwrap();
}

fn base64_cursor(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{key}\u{0}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_problem_documents_of_a_stable_type() {
    let f = federation_with(10, |c| {
        c.gateway.as_mut().unwrap().body_bytes = 16 << 10;
    })
    .await;
    let tokens = with_policies(&f).await;
    let (city, street) = (Gateway::of(&f, CITY), Gateway::of(&f, STREET));
    let records = format!("{RESIDENTS_PATH}/records");
    let zhao = token(&f, CITY, "zhao", Scope::Read);
    let kind = |body: &Value| {
        body["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("/problems/")
            .to_owned()
    };
    let check = async |request: reqwest::RequestBuilder, status: StatusCode, slug: &str| {
        let (got, body) = problem(request.send().await.unwrap()).await;
        assert_eq!((got, kind(&body).as_str()), (status, slug), "{body}");
        body
    };

    // Tokens: none, not a token, a token of no node, another node's, expired, revoked.
    check(
        city.get("/v1/catalogs"),
        StatusCode::UNAUTHORIZED,
        "token-missing",
    )
    .await;
    check(
        city.get("/v1/catalogs").bearer_auth("nonsense"),
        StatusCode::UNAUTHORIZED,
        "token-malformed",
    )
    .await;
    let made_up = tierlink_core::identity::tokens::new_secret().unwrap();
    check(
        city.get("/v1/catalogs").bearer_auth(&made_up),
        StatusCode::UNAUTHORIZED,
        "token-unknown",
    )
    .await;
    let wang = token(&f, STREET, "wang", Scope::Read);
    check(
        city.get("/v1/catalogs").bearer_auth(&wang),
        StatusCode::UNAUTHORIZED,
        "token-unknown",
    )
    .await;
    let expiring = token(&f, CITY, "zhao", Scope::Read);
    let path = f.federation.nodes[CITY].dir.tokens_path();
    let mut file = ApiTokens::load(&path).unwrap();
    let id = file.find(&expiring).unwrap().id.clone();
    // The file as its administrator could edit it: this token's expiry moved into the past.
    let mut text = std::fs::read_to_string(&path).unwrap();
    let at = text.find(&format!("id = \"{id}\"")).unwrap();
    let expiry = at + text[at..].find("expires = \"2099-12-31\"").unwrap();
    text.replace_range(expiry..expiry + 22, "expires = \"2020-01-01\"");
    std::fs::write(&path, text).unwrap();
    check(
        city.get("/v1/catalogs").bearer_auth(&expiring),
        StatusCode::UNAUTHORIZED,
        "token-expired",
    )
    .await;
    let revoked = token(&f, CITY, "zhao", Scope::Read);
    file = ApiTokens::load(&path).unwrap();
    let id = file.find(&revoked).unwrap().id.clone();
    file.revoke(&id, chrono::Utc::now()).unwrap();
    file.save(&path).unwrap();
    check(
        city.get("/v1/catalogs").bearer_auth(&revoked),
        StatusCode::UNAUTHORIZED,
        "token-revoked",
    )
    .await;

    // Scope, role, purpose, grants.
    check(
        city.get("/v1/audit").bearer_auth(&zhao),
        StatusCode::FORBIDDEN,
        "scope-insufficient",
    )
    .await;
    check(
        street
            .post(&records)
            .bearer_auth(&wang)
            .json(&Vec::<Value>::new()),
        StatusCode::FORBIDDEN,
        "scope-insufficient",
    )
    .await;
    check(
        city.get(&records)
            .bearer_auth(&zhao)
            .query(&[("target", STREET_CODE)]),
        StatusCode::BAD_REQUEST,
        "purpose-required",
    )
    .await;
    let refused = check(
        reader(city.get(&records), &zhao, ALLOWANCE).query(&[("target", STREET_CODE)]),
        StatusCode::FORBIDDEN,
        "permission-denied",
    )
    .await;
    assert!(refused["instance"].as_str().is_some());
    f.federation
        .add_principal(
            f.clients[CITY].code(),
            "both",
            &["420500/ps-analyst", "420500/other"],
        )
        .unwrap();
    let both = token(&f, CITY, "both", Scope::Read);
    let body = check(
        reader(city.get(&records), &both, SECURITY).query(&[("target", STREET_CODE)]),
        StatusCode::BAD_REQUEST,
        "role-required",
    )
    .await;
    assert_eq!(
        body["roles"],
        serde_json::json!(["420500/other", "420500/ps-analyst"])
    );
    let served = reader(city.get(&records), &both, SECURITY)
        .header("Tierlink-Role", "420500/ps-analyst")
        .query(&[("target", STREET_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    // A role the principal does not hold: authenticated, but not permitted, to read or to have
    // a read explained.
    check(
        reader(city.get(&records), &zhao, SECURITY)
            .header("Tierlink-Role", "420500/other")
            .query(&[("target", STREET_CODE)]),
        StatusCode::FORBIDDEN,
        "permission-denied",
    )
    .await;
    let body = check(
        reader(
            city.get(&format!("{RESIDENTS_PATH}/explain")),
            &zhao,
            SECURITY,
        )
        .header("Tierlink-Role", "420500/other")
        .query(&[("target", STREET_CODE)]),
        StatusCode::FORBIDDEN,
        "permission-denied",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("420500/ps-analyst"),
        "{body}"
    );
    // A purpose or role longer than such things are is refused, naming the limit, whatever its
    // characters.
    for purpose in ["x".repeat(8 << 10), "核".repeat(300)] {
        let body = check(
            reader(city.get(&records), &zhao, &purpose).query(&[("target", STREET_CODE)]),
            StatusCode::BAD_REQUEST,
            "invalid-argument",
        )
        .await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("purpose is at most 256 characters"),
            "{detail}"
        );
        let body = check(
            reader(
                city.get(&format!("{RESIDENTS_PATH}/explain")),
                &zhao,
                &purpose,
            )
            .query(&[("target", STREET_CODE)]),
            StatusCode::BAD_REQUEST,
            "invalid-argument",
        )
        .await;
        assert!(body.to_string().len() < 2_000, "{body}");
    }
    // A path of 10,000 characters is not repeated whole.
    let long = format!(
        "/v1/catalogs/101001001/000001/records/{}/history",
        "k".repeat(10_000)
    );
    let body = check(
        reader(city.get(&long), &zhao, SECURITY).query(&[("target", STREET_CODE)]),
        StatusCode::FORBIDDEN,
        "permission-denied",
    )
    .await;
    assert!(
        body.to_string().len() < 8_000,
        "{} bytes",
        body.to_string().len()
    );
    check(
        reader(city.get(&records), &zhao, SECURITY)
            .header("Tierlink-Role", "r".repeat(8 << 10))
            .query(&[("target", STREET_CODE)]),
        StatusCode::BAD_REQUEST,
        "invalid-argument",
    )
    .await;
    check(
        reader(city.get(&records), &zhao, SECURITY)
            .query(&[("target", STREET_CODE), ("limit", "100000")]),
        StatusCode::BAD_REQUEST,
        "invalid-argument",
    )
    .await;
    check(
        reader(city.get(&records), &zhao, SECURITY)
            .query(&[("target", STREET_CODE), ("colour", "red")]),
        StatusCode::BAD_REQUEST,
        "invalid-argument",
    )
    .await;
    check(
        reader(
            city.get("/v1/catalogs/101001001/999999/records"),
            &zhao,
            SECURITY,
        )
        .query(&[("target", STREET_CODE)]),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;

    // Bodies: malformed JSON, the wrong type, too large, records that break the catalog.
    f.federation
        .add_principal(
            f.clients[STREET].code(),
            "clerk",
            &["420502001/grid-worker"],
        )
        .unwrap();
    let clerk = writer(&f, STREET, "clerk", &[RESIDENTS]);
    let post = || street.post(&records).bearer_auth(&clerk);
    check(
        post()
            .header("Content-Type", "application/json")
            .body("[{\"id_number\": "),
        StatusCode::BAD_REQUEST,
        "malformed-json",
    )
    .await;
    check(
        post()
            .header("Content-Type", "application/json")
            .body("{\"not\": \"a list\"}"),
        StatusCode::BAD_REQUEST,
        "malformed-json",
    )
    .await;
    check(
        post()
            .header("Content-Type", "text/csv")
            .body("id_number\n1\n"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let large = vec![serde_json::json!({"name": "x".repeat(1000)}); 40];
    check(
        post().json(&large),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
    )
    .await;
    let body = check(
        post().json(&vec![
            serde_json::json!({"id_number": "not an id", "name": "n"}),
        ]),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-records",
    )
    .await;
    assert!(!body["errors"].as_array().unwrap().is_empty());

    // Routes, methods and forms that do not exist.
    check(
        city.get("/v2/catalogs"),
        StatusCode::NOT_FOUND,
        "route-not-found",
    )
    .await;
    let wrong = city.client.delete(format!("{}/v1/catalogs", city.base));
    let allowed = wrong.try_clone().unwrap().send().await.unwrap();
    assert_eq!(allowed.headers()["allow"], "GET,HEAD");
    check(wrong, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    check(
        reader(city.get(&records), &zhao, SECURITY)
            .query(&[("target", STREET_CODE)])
            .header("Accept", "text/csv"),
        StatusCode::NOT_ACCEPTABLE,
        "not-acceptable",
    )
    .await;

    // Every type serves its page.
    for slug in ["token-missing", "invalid-records", "method-not-allowed"] {
        let page = city.get(&format!("/problems/{slug}")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
    }
    let _ = tokens;

    // Failed tokens from one address: after the node's limit, 429 with Retry-After, whatever
    // the token.
    let limit = f.federation.nodes[CITY]
        .dir
        .config
        .limits
        .token_guesses_per_minute;
    let mut refused_after = None;
    for n in 0..=limit + 1 {
        let response = city
            .get("/v1/catalogs")
            .bearer_auth(&made_up)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
            let (_, body) = problem(response).await;
            assert_eq!(kind(&body), "too-many-guesses");
            refused_after = Some(n);
            break;
        }
    }
    assert!(
        refused_after.is_some_and(|n| n <= limit + 1),
        "{refused_after:?}"
    );
    check(
        city.get("/v1/catalogs").bearer_auth(&zhao),
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-guesses",
    )
    .await;
    f.federation.stop().await.unwrap();
}

/// An export file of the handed cases, as the tests keep them.
fn case(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/imports")
        .join(name);
    std::fs::read(path).unwrap()
}

/// The street's own records of `catalog`, as it stores them.
async fn stored(f: &Fixture, catalog: &str) -> Vec<Map<String, Value>> {
    let request = QueryRequest {
        scope: Some(ReadScope {
            catalog: catalog.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut records = Vec::new();
    f.clients[STREET]
        .read(None, request, |_, batch: VerifiedBatch| {
            records.extend(batch.json_records());
            Ok(())
        })
        .await
        .unwrap();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_upload_as_the_command_line_imports_them() {
    const SEEKERS: &str = "301001001/000001";
    let f = federation(0).await;
    f.clients[STREET]
        .put_catalog(example("job-seekers.json"))
        .await
        .unwrap();
    f.federation
        .add_principal(
            f.clients[STREET].code(),
            "clerk",
            &["420502001/grid-worker"],
        )
        .unwrap();
    let clerk = writer(&f, STREET, "clerk", &["301001001/000001"]);
    let street = Gateway::of(&f, STREET);
    let upload = |file: Vec<u8>, media: &str, query: &[(&str, &str)]| {
        street
            .post("/v1/catalogs/301001001/000001/imports")
            .bearer_auth(&clerk)
            .header("Content-Type", media)
            .query(query)
            .body(file)
    };

    // A GB18030 export of five Chinese characters, which read as Chinese in Big5 too: refused,
    // naming the charset to give; given it, checked, and in a dry run not stored.
    let (status, body) = problem(
        upload(case("gb18030.csv"), "text/csv", &[("dry_run", "true")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("pass encoding=gb18030 (or charset=gb18030 in the Content-Type)"),
        "{body}"
    );
    let gb18030 = "text/csv; charset=gb18030";
    let report: Value = upload(case("gb18030.csv"), gb18030, &[("dry_run", "true")])
        .fetch_json()
        .await;
    assert_eq!(report["encoding"], "GB18030", "{report}");
    assert_eq!(report["good"], report["read"]);
    assert!(report.get("written").is_none());
    assert!(stored(&f, SEEKERS).await.is_empty());
    // Forced to UTF-8, the same bytes are refused with the line and what to do.
    let (status, body) = problem(
        upload(case("gb18030.csv"), "text/csv; charset=utf-8", &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "/problems/unreadable-file");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("line 2")
            && detail.contains("pass encoding=gb18030 (or charset=gb18030 in the Content-Type)")
            && !detail.contains("--"),
        "{body}"
    );

    // Stored for real; posted again, nothing new is stored: an interrupted upload resumes.
    let first: Value = upload(case("gb18030.csv"), gb18030, &[]).fetch_json().await;
    let good = first["good"].as_u64().unwrap();
    assert_eq!(first["written"]["created"], good, "{first}");
    let records = stored(&f, SEEKERS).await;
    assert_eq!(records.len() as u64, good);
    assert!(records.iter().any(|r| r["desired_occupation"] == "保安"));
    let again: Value = upload(case("gb18030.csv"), gb18030, &[]).fetch_json().await;
    assert_eq!(again["written"]["unchanged"], good, "{again}");
    assert_eq!(stored(&f, SEEKERS).await, records);

    // A CRLF file with a bad row: refused whole with the line a text editor shows and a reject
    // file; with skip_bad the good rows are written.
    let bad = case("crlf-plain-valueerr.csv");
    let (status, body) = problem(upload(bad.clone(), "text/csv", &[]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["line"], 4, "{body}");
    assert_eq!(body["errors"][0]["item"], "sex");
    let rejects = body["reject_file"].as_str().unwrap();
    assert!(
        rejects.contains("_problems") && rejects.contains("line 4: sex"),
        "{rejects}"
    );
    let before = stored(&f, SEEKERS).await.len();
    let partial: Value = upload(bad, "text/csv", &[("skip_bad", "true")])
        .fetch_json()
        .await;
    assert_eq!(partial["rejected"][0]["line"], 4);
    let written = partial["written"]["created"].as_u64().unwrap() as usize;
    assert_eq!(stored(&f, SEEKERS).await.len(), before + written);

    // A file of many bad rows: the answer lists the first 1,000, and its reject file holds those.
    let mut many = String::from(
        "seeker_id,id_number,name,sex,birth_date,phone,education,desired_occupation,desired_wage,unemployed_since,registered_on,street_code\n",
    );
    for n in 0..1500 {
        many.push_str(&format!(
            "QA-MANY-{n:04},420502197101015552,测试,3,1971-01-01,,,焊工,,,2026-11-01,420502002\n"
        ));
    }
    let (status, body) = problem(
        upload(many.clone().into_bytes(), "text/csv", &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(
        errors.len(),
        1000,
        "one problem a row, the first 1,000 rows"
    );
    assert_eq!(errors[999]["line"], 1001);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("1500 of 1500 records are rejected (errors lists the first 1000 rows)"),
        "{}",
        body["detail"]
    );
    let rejects = body["reject_file"].as_str().unwrap();
    assert_eq!(
        rejects.lines().count(),
        1001,
        "the header and the rows listed"
    );
    // Refused, the import is audited as a refused write of the clerk's.
    let audit = f.federation.nodes[STREET].audit().unwrap();
    let refused = audited(audit, |e| {
        e.kind == "write" && e.catalog == SEEKERS && e.reason.contains("1500 of 1500")
    })
    .await;
    assert_eq!(refused.outcome, Some(Outcome::Refused));
    assert_eq!(refused.principal, "clerk@420502001");
    let dry: Value = upload(many.into_bytes(), "text/csv", &[("dry_run", "true")])
        .fetch_json()
        .await;
    assert_eq!(dry["rejected_count"], 1500);
    assert_eq!(dry["rejected"].as_array().unwrap().len(), 1000);

    // Not a file type the import reads.
    let (status, body) = problem(
        upload(b"x".to_vec(), "application/pdf", &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["type"], "/problems/unsupported-media-type");
    f.federation.stop().await.unwrap();
}
