//! HTTPS clients of the nodes' REST gateways, trusting the federation CA only, as an
//! integrator's would.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Map, Value};
use tierlink_core::identity::tokens::{Issue, Scope};

use super::Fixture;

/// A gateway's base URL and a client that trusts the federation CA.
pub struct Gateway {
    pub client: Client,
    pub base: String,
}

impl Gateway {
    /// Node `n`'s gateway.
    pub fn of(f: &Fixture, n: usize) -> Self {
        let node = &f.federation.nodes[n];
        let ca = std::fs::read(node.dir.path(&node.dir.config.files.ca)).unwrap();
        let client = Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Self {
            client,
            base: node.gateway_url().expect("the node serves a gateway"),
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }
}

/// A request whose answer is read as JSON.
pub trait FetchJson {
    /// Sends the request and reads its answer's body as JSON of type `T`; panics on failure.
    async fn fetch_json<T: serde::de::DeserializeOwned>(self) -> T;
}

impl FetchJson for RequestBuilder {
    async fn fetch_json<T: serde::de::DeserializeOwned>(self) -> T {
        self.send().await.unwrap().json().await.unwrap()
    }
}

/// The last day of the tokens tests issue.
pub fn until() -> chrono::NaiveDate {
    "2099-12-31".parse().unwrap()
}

/// A token of `scope` (read, or admin with no principal) for principal `name` of node `n`,
/// working until 2099.
pub fn token(f: &Fixture, n: usize, name: &str, scope: Scope) -> String {
    issue(f, n, Issue::new(name, scope, until()))
}

/// The token `issue` describes, on node `n`.
pub fn issue(f: &Fixture, n: usize, issue: Issue) -> String {
    let code = f.federation.nodes[n].dir.code().clone();
    f.federation.add_token(&code, issue).unwrap()
}

/// A write token of principal `name` of node `n` for `catalogs`, working until 2099.
pub fn writer(f: &Fixture, n: usize, name: &str, catalogs: &[&str]) -> String {
    issue(f, n, Issue::writer(name, catalogs, until()))
}

/// A principal's read headers: its token, and the purpose (percent-encoded).
pub fn reader(request: RequestBuilder, token: &str, purpose: &str) -> RequestBuilder {
    let purpose: String = url_encode(purpose);
    request
        .bearer_auth(token)
        .header("Tierlink-Purpose", purpose)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A problem document's status and body, checked to be one: its content type, its members,
/// its status as sent.
pub async fn problem(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let media = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    assert_eq!(media, "application/problem+json", "{body}");
    assert!(
        body["type"].as_str().unwrap().starts_with("/problems/"),
        "{body}"
    );
    assert!(!body["title"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body["status"].as_u64().unwrap(), u64::from(status.as_u16()));
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    (status, body)
}

/// The NDJSON records of a read, and the body's bytes.
pub async fn ndjson(request: RequestBuilder) -> (Vec<Map<String, Value>>, Vec<u8>) {
    let response = request
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap().to_vec();
    let records = String::from_utf8(bytes.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records, bytes)
}
