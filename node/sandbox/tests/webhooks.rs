//! Webhooks on real nodes: the city delivers the street's residents, as its analyst reads them
//! through the city, to an HTTP receiver in the test. Deliveries arrive in write order, signed
//! `v1a` by the city's signing key (checked against its signing certificate) and `v1` by the
//! webhook's secret; a receiver that answers 503 with Retry-After gets the delivery again later
//! with the same webhook-id; pending deliveries survive a restart of the city; a receiver that
//! always fails fills the dead-letter list, from which a replay delivers with the same id; a URL
//! outside `[webhooks] receivers` is refused; a revoked grant stops the webhook with the reason.

mod util;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use tierlink_core::identity::pem_to_der;
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::webhooks_client::WebhooksClient;
use tierlink_proto::v1::{
    AddWebhookRequest, DeadLettersRequest, ListWebhooksRequest, ReplayRequest,
    ResumeWebhookRequest, Webhook,
};
use tierlink_sandbox::sample;
use util::*;

const STREET_CODE: &str = "420502001";

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    status: u16,
}

/// How the receiver answers.
#[derive(Default)]
struct Mode {
    /// Requests still to answer 503 with `Retry-After: 1`.
    refuse_next: u32,
    /// Answer 500 to every request.
    down: bool,
    /// Answer 410 Gone to every request.
    gone: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Receiver {
    /// Serves on 127.0.0.1 with a port the OS picks; returns its base URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://127.0.0.1:{}", addr.port())
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The deliveries to `path` answered 2xx, in the order they arrived.
    fn delivered(&self, path: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == path && h.status == 200)
            .collect()
    }

    fn set(&self, change: impl FnOnce(&mut Mode)) {
        change(&mut self.mode.lock().unwrap());
    }
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, retry) = {
        let mut mode = r.mode.lock().unwrap();
        if mode.gone {
            (StatusCode::GONE, false)
        } else if mode.down {
            (StatusCode::INTERNAL_SERVER_ERROR, false)
        } else if mode.refuse_next > 0 {
            mode.refuse_next -= 1;
            (StatusCode::SERVICE_UNAVAILABLE, true)
        } else {
            (StatusCode::OK, false)
        }
    };
    r.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        path: uri.path().to_owned(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
        status: status.as_u16(),
    });
    if retry {
        (status, [("retry-after", "1")]).into_response()
    } else {
        status.into_response()
    }
}

/// Waits (up to 60 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhooks(f: &Fixture, n: usize) -> WebhooksClient<tonic::transport::Channel> {
    let dir = &f.federation.nodes[n].dir;
    let channel =
        tierlink_client::channel(&dir.credentials().unwrap(), &dir.config.server.endpoint)
            .await
            .unwrap();
    WebhooksClient::new(channel)
}

fn add(
    credential: &Option<tierlink_proto::v1::Credential>,
    url: String,
    hmac: bool,
) -> AddWebhookRequest {
    AddWebhookRequest {
        catalog: RESIDENTS.into(),
        target: STREET_CODE.into(),
        credential: credential.clone(),
        url,
        hmac,
        from: String::new(),
    }
}

/// The city's webhook `id` as `list` shows it.
async fn listed(f: &Fixture, id: &str) -> Webhook {
    webhooks(f, CITY)
        .await
        .list(ListWebhooksRequest {})
        .await
        .unwrap()
        .into_inner()
        .webhooks
        .into_iter()
        .find(|w| w.id == id)
        .unwrap()
}

/// Writes `n` new residents (numbered from `from`) at the street, then renames the first; returns
/// the versions written, `(key, version)`, in write order.
async fn write(f: &Fixture, from: usize, n: usize) -> Vec<(String, u64)> {
    let rows = sample::residents(STREET_CODE, from + n, 7).split_off(from);
    let name = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "name")
        .unwrap();
    let mut renamed = rows[0].clone();
    renamed[name] = format!("{} (renamed)", renamed[name]);
    let mut versions: Vec<(String, u64)> = rows.iter().map(|r| (r[0].clone(), 1)).collect();
    versions.push((rows[0][0].clone(), 2));
    for rows in [rows, vec![renamed]] {
        f.clients[STREET]
            .put_records(RESIDENTS, columns(sample::RESIDENT_COLUMNS), rows)
            .await
            .unwrap();
    }
    versions
}

/// The versions a delivery's body carries, `(key, version)`, in order.
fn versions(hit: &Hit) -> Vec<(String, u64)> {
    let body: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
    body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["_key"].as_str().unwrap().to_owned(),
                r["_version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The versions of distinct deliveries (by webhook-id, first arrival) to `path`, in order.
fn distinct_versions(receiver: &Receiver, path: &str) -> Vec<(String, u64)> {
    let mut seen = std::collections::HashMap::new();
    let mut out = Vec::new();
    for hit in receiver.delivered(path) {
        match seen.get(&hit.id) {
            // A repeat is allowed only as the same delivery: the same body.
            Some(body) => assert_eq!(body, &hit.body, "{} repeated with another body", hit.id),
            None => {
                seen.insert(hit.id.clone(), hit.body.clone());
                out.extend(versions(&hit));
            }
        }
    }
    out
}

/// Checks a delivery as a receiver does: `v1a` by the city's signing certificate and `v1` under
/// `secret`, over `{id}.{timestamp}.{body}`, with a timestamp within five minutes.
fn check_signatures(f: &Fixture, hit: &Hit, secret: &str) {
    let dir = &f.federation.nodes[CITY].dir;
    let certificate = pem_to_der(&dir.credentials().unwrap().signing_cert_pem).unwrap();
    let key = dir
        .trusted_ca()
        .unwrap()
        .verify_producer(&certificate)
        .unwrap()
        .key;
    let content = format!("{}.{}.{}", hit.id, hit.timestamp, hit.body);
    let timestamp: i64 = hit.timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300);
    assert!(hit.id.starts_with("msg_"), "{}", hit.id);
    let mut schemes = Vec::new();
    for signature in hit.signature.split(' ') {
        let (scheme, value) = signature.split_once(',').unwrap();
        let value = STANDARD.decode(value).unwrap();
        match scheme {
            "v1a" => {
                let signature = ed25519_dalek::Signature::from_slice(&value).unwrap();
                key.verify_strict(content.as_bytes(), &signature).unwrap();
            }
            "v1" => {
                let secret = STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap())
                    .unwrap();
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
                mac.update(content.as_bytes());
                mac.verify_slice(&value).unwrap();
            }
            other => panic!("unexpected scheme {other}"),
        }
        schemes.push(scheme.to_owned());
    }
    schemes.sort();
    assert_eq!(schemes, ["v1", "v1a"]);
    let body: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
    assert_eq!(body["type"], "records.changed");
    assert_eq!(body["data"]["catalog"], RESIDENTS);
    assert_eq!(body["data"]["producer"], STREET_CODE);
    assert!(!body["data"]["manifest"].as_array().unwrap().is_empty());
    assert!(body["data"]["resume_token"].as_str().unwrap().contains('.'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_arrive_in_order_signed_retried_after_503_and_survive_a_restart() {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let allowed = format!("{base}/");
    let mut f = federation_with(10, move |c| {
        c.webhooks.receivers = vec![allowed.clone()];
        // Long enough that a delivery is still pending across the restart below.
        c.webhooks.retry_ms = vec![0, 100, 1_500, 1_500, 1_500, 1_500, 1_500, 1_500];
    })
    .await;
    let open = open_policies(&f).await;
    let added = webhooks(&f, CITY)
        .await
        .add(add(&open.city, format!("{base}/in"), true))
        .await
        .unwrap()
        .into_inner();
    assert!(added.secret.starts_with("whsec_"), "{}", added.secret);

    // Written at the street, delivered from the city in write order, each signed both ways.
    let mut written = write(&f, 10, 3).await;
    until("the first versions", || {
        distinct_versions(&receiver, "/in").len() >= written.len()
    })
    .await;
    assert_eq!(distinct_versions(&receiver, "/in"), written);
    for hit in receiver.hits() {
        check_signatures(&f, &hit, &added.secret);
    }

    // A receiver that answers 503 with Retry-After: 1 gets the delivery again, a second later,
    // with the same webhook-id.
    receiver.set(|m| m.refuse_next = 1);
    let before = receiver.hits().len();
    written.extend(write(&f, 20, 1).await);
    until("the refused delivery again", || {
        distinct_versions(&receiver, "/in").len() >= written.len()
    })
    .await;
    let retried: Vec<Hit> = receiver.hits().split_off(before);
    assert_eq!(retried[0].status, 503);
    assert_eq!(retried[1].id, retried[0].id);
    assert_eq!(retried[1].status, 200);
    assert!(retried[1].at - retried[0].at >= Duration::from_millis(900));

    // Deliveries pending when the city stops are delivered after it starts again.
    receiver.set(|m| m.down = true);
    let before = receiver.hits().len();
    written.extend(write(&f, 30, 2).await);
    until("a failed attempt before the restart", || {
        receiver.hits().len() > before
    })
    .await;
    let pending = listed(&f, &added.id).await;
    assert!(pending.pending >= 1, "{pending:?}");
    f.federation.stop_node(CITY).await.unwrap();
    receiver.set(|m| m.down = false);
    f.federation.start_node(CITY).await.unwrap();
    until("every version after the restart", || {
        distinct_versions(&receiver, "/in").len() >= written.len()
    })
    .await;
    // Nothing lost, nothing out of order; a repeat only as the same delivery (checked above).
    assert_eq!(distinct_versions(&receiver, "/in"), written);
    for hit in receiver.hits() {
        check_signatures(&f, &hit, &added.secret);
    }
    let after = listed(&f, &added.id).await;
    assert_eq!(
        (after.pending, after.dead, after.stopped.as_str()),
        (0, 0, "")
    );
    f.federation.stop().await.unwrap();
}

/// A receiver, and a federation whose nodes allow it under `/hooks/` and try a delivery three
/// times, 50 ms apart: the receiver, its base URL, the federation and its open policies.
async fn quick_retries() -> (Receiver, String, Fixture, Open) {
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let allowed = format!("{base}/hooks/");
    let f = federation_with(10, move |c| {
        c.webhooks.receivers = vec![allowed.clone()];
        c.webhooks.retry_ms = vec![0, 50, 50];
    })
    .await;
    let open = open_policies(&f).await;
    (receiver, base, f, open)
}

/// Why webhook `id` stopped, once it has (waiting up to 60 s).
async fn stop_reason(f: &Fixture, id: &str) -> String {
    for _ in 0..1200 {
        let stopped = listed(f, id).await.stopped;
        if !stopped.is_empty() {
            return stopped;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook {id} did not stop within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_with_their_id_receivers_are_the_configured_ones_and_a_revoked_grant_stops()
 {
    let (receiver, base, f, open) = quick_retries().await;
    let mut client = webhooks(&f, CITY).await;

    // A URL outside the configured receivers is refused, naming the setting.
    for url in [format!("{base}/other"), "https://example.com/hooks/".into()] {
        let refused = client.add(add(&open.city, url, false)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("[webhooks] receivers"),
            "{}",
            refused.message()
        );
    }
    // So is a principal the city does not have.
    let mut stranger = open.city.clone();
    stranger.as_mut().unwrap().principal = "nobody".into();
    let refused = client
        .add(add(&stranger, format!("{base}/hooks/a"), false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // A receiver that always fails: after the last attempt the delivery is a dead letter.
    receiver.set(|m| m.down = true);
    let id = client
        .add(add(&open.city, format!("{base}/hooks/a"), false))
        .await
        .unwrap()
        .into_inner()
        .id;
    let written = write(&f, 10, 1).await;
    let mut dead = Vec::new();
    for _ in 0..1200 {
        dead = client
            .dead_letters(DeadLettersRequest {
                webhook: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .letters;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let letter = dead.first().expect("a dead letter within 60 s").clone();
    assert_eq!(letter.attempts, 3);
    assert!(letter.last_error.contains("500"), "{}", letter.last_error);

    // Replayed once the receiver is back: delivered with the same webhook-id.
    receiver.set(|m| m.down = false);
    let replayed = client
        .replay(ReplayRequest {
            webhook: id.clone(),
            delivery: letter.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.replayed, 1);
    until("the replayed delivery", || {
        receiver
            .delivered("/hooks/a")
            .iter()
            .any(|h| h.id == letter.id)
    })
    .await;
    until("every version", || {
        distinct_versions(&receiver, "/hooks/a").len() >= written.len()
    })
    .await;
    // Every version arrived; a replayed one may come after a later one (the receiver keeps the
    // higher `_version` of each `_key`).
    let mut arrived = distinct_versions(&receiver, "/hooks/a");
    arrived.sort();
    assert_eq!(arrived, written);
    let now_dead = client
        .dead_letters(DeadLettersRequest {
            webhook: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert!(now_dead.is_empty(), "{now_dead:?}");

    // A grant revoked: the webhook stops, saying why, and is not retried in a loop.
    f.federation
        .issue(
            f.clients[STREET].code(),
            vec![DirectoryCommand::Policy(
                tierlink_core::policy::PolicyCommand::Revoke("analyst-101".into()),
            )],
        )
        .await
        .unwrap();
    let stopped = stop_reason(&f, &id).await;
    assert!(stopped.contains("no longer holds"), "{stopped:?}");
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_stopped_by_its_receiver_resumes_where_it_stopped() {
    let (receiver, base, f, open) = quick_retries().await;
    let mut client = webhooks(&f, CITY).await;
    receiver.set(|m| m.gone = true);
    let id = client
        .add(add(&open.city, format!("{base}/hooks/a"), false))
        .await
        .unwrap()
        .into_inner()
        .id;
    let written = write(&f, 10, 1).await;
    let stopped = stop_reason(&f, &id).await;
    assert!(stopped.contains("410"), "{stopped:?}");
    // The receiver wants deliveries again: resumed, it gets what was queued, then the rest.
    receiver.set(|m| m.gone = false);
    let resumed = client
        .resume(ResumeWebhookRequest {
            webhook: id.clone(),
            token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.stopped, stopped);
    assert!(resumed.pending >= 1, "{resumed:?}");
    until("every version after the resume", || {
        distinct_versions(&receiver, "/hooks/a").len() >= written.len()
    })
    .await;
    assert_eq!(distinct_versions(&receiver, "/hooks/a"), written);
    assert!(listed(&f, &id).await.stopped.is_empty());
    // A running webhook is not resumed.
    let refused = client
        .resume(ResumeWebhookRequest {
            webhook: id.clone(),
            token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // The administrator takes the receiver out of the node's settings: the webhook stops at its
    // next delivery, saying why, rather than retrying towards dead letters.
    let mut f = f;
    f.federation.stop_node(CITY).await.unwrap();
    f.federation.nodes[CITY]
        .dir
        .config
        .webhooks
        .receivers
        .clear();
    f.federation.start_node(CITY).await.unwrap();
    write(&f, 20, 1).await;
    let stopped = stop_reason(&f, &id).await;
    assert!(
        stopped.contains("is not an allowed receiver"),
        "{stopped:?}"
    );
    f.federation.stop().await.unwrap();
}
