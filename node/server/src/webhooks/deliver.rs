//! One attempt of one delivery, as the Standard Webhooks specification has it: a POST of the
//! JSON body with `webhook-id`, `webhook-timestamp` (integer Unix seconds) and
//! `webhook-signature`, a space-separated list of `v1a,<base64 Ed25519>` by the node's
//! batch-signing key and, when the webhook has a secret, `v1,<base64 HMAC-SHA256>`, both over
//! `{webhook-id}.{webhook-timestamp}.{body}`. A 2xx answer delivers it; anything else (a 3xx
//! too: no redirect is followed) fails the attempt, and the next waits for the schedule's next
//! step or the receiver's `Retry-After` (RFC 9110 §10.2.3), whichever is longer.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use sha2::Sha256;
use tierlink_client::error_chain;
use tierlink_core::config::WebhookSettings;
use tierlink_core::identity::NodeKey;
use tierlink_core::signed::BatchSigner;

use super::store::{Delivery, Hook};

/// The prefix of HMAC secrets, as the specification serialises them.
pub const SECRET_PREFIX: &str = "whsec_";

/// The URL prefixes deliveries may go to: node.toml's `[webhooks] receivers`.
pub struct Receivers(Vec<Url>);

impl Receivers {
    /// The configured prefixes, each an absolute `http` or `https` URL.
    pub fn parse(prefixes: &[String]) -> Result<Self, String> {
        prefixes
            .iter()
            .map(|p| {
                Url::parse(p)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                    .ok_or_else(|| {
                        format!(
                            "[webhooks] receivers: {p:?} is not an http(s) URL prefix such as https://erp.example.gov.cn:8443/hooks/"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Checks that `url` is under a configured prefix: the same scheme, host and port, and a
    /// path that is the prefix's or below it.
    pub fn check(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let under = |prefix: &Url| {
            let (path, base) = (parsed.path(), prefix.path());
            prefix.scheme() == parsed.scheme()
                && prefix.host_str() == parsed.host_str()
                && prefix.port_or_known_default() == parsed.port_or_known_default()
                && (path == base
                    || base.ends_with('/') && path.starts_with(base)
                    || path.strip_prefix(base).is_some_and(|r| r.starts_with('/')))
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "{url} carries a user name or password: a receiver is not given credentials in its URL; use the HMAC secret (--hmac), or check the v1a signature"
            ));
        }
        if self.0.iter().any(under) {
            return Ok(parsed);
        }
        let allowed: Vec<&str> = self.0.iter().map(Url::as_str).collect();
        Err(if allowed.is_empty() {
            format!(
                "{url} is not an allowed receiver: this node allows none; its administrator names the receivers in node.toml's [webhooks] receivers"
            )
        } else {
            format!(
                "{url} is not under an allowed receiver ({}): use a URL under one, or have the node's administrator add its prefix to node.toml's [webhooks] receivers",
                allowed.join(", ")
            )
        })
    }
}

/// A new HMAC secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` of a delivery: `v1a` by `key`, and `v1` under `secret` when given.
pub fn signature(
    key: &NodeKey,
    secret: Option<&str>,
    id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    let content = format!("{id}.{timestamp}.{body}");
    // Signed as it stands, with no context of ours: the specification fixes the content. It
    // starts `msg_`, so it is never the `tierlink.v1.BatchHeader\0…` or requester content the
    // same key signs for batches, nor taken for one.
    let mut signatures = format!("v1a,{}", STANDARD.encode(key.sign(b"", content.as_bytes())));
    if let Some(v1) = secret.and_then(|s| hmac_signature(s, &content)) {
        signatures.push(' ');
        signatures.push_str(&v1);
    }
    signatures
}

/// The `v1` signature of `content` under a `whsec_` secret; `None` for a secret of another form.
pub fn hmac_signature(secret: &str, content: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(content.as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// How long a `Retry-After` value asks to wait from `now`: delay-seconds or an HTTP-date (RFC
/// 9110 §10.2.3); `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// How long to wait after a delivery's `attempts`-th attempt failed: `schedule`'s next step, or
/// the receiver's `retry_after` when longer (at most the schedule's longest step). `None` once
/// every step is spent: the delivery is dead.
pub fn next_delay(
    schedule: &[Duration],
    attempts: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let step = *schedule.get(attempts as usize)?;
    let longest = schedule.iter().max().copied().unwrap_or_default();
    Some(step.max(retry_after.unwrap_or_default().min(longest)))
}

/// How an attempt went.
#[derive(Debug)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered,
    /// 410 Gone: the receiver wants no more deliveries.
    Gone,
    /// The URL is no longer under an allowed receiver: the administrator took it out.
    NotAllowed(String),
    /// Anything else: the status or the error, and the receiver's `Retry-After`.
    Failed {
        /// What happened, for the dead-letter list.
        error: String,
        /// How long the receiver asked to wait.
        retry_after: Option<Duration>,
    },
}

/// Sends deliveries: the HTTP client, the retry schedule, the node's signing key, and the
/// receivers allowed now.
pub struct Sender {
    client: reqwest::Client,
    schedule: Vec<Duration>,
    signer: Arc<BatchSigner>,
    receivers: Receivers,
}

impl Sender {
    /// A sender as `[webhooks]` says, trusting the webpki roots and the certificates of
    /// `ca_pem` (the `ca` file's text), signing with `signer`.
    pub fn new(
        settings: &WebhookSettings,
        ca_pem: Option<&str>,
        signer: Arc<BatchSigner>,
    ) -> Result<Self, String> {
        let receivers = Receivers::parse(&settings.receivers)?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(concat!("tierlink/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("[webhooks] ca: not PEM certificates: {e}"))?;
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(Self {
            client: builder
                .build()
                .map_err(|e| format!("webhook HTTP client: {e}"))?,
            schedule: settings
                .retry_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            signer,
            receivers,
        })
    }

    /// How long to wait before a delivery's first attempt.
    pub fn first_delay(&self) -> Duration {
        self.schedule[0]
    }

    /// How long to wait after a delivery's `attempts`-th attempt failed ([`next_delay`]).
    pub fn next_delay(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        next_delay(&self.schedule, attempts, retry_after)
    }

    /// One attempt of `delivery` to `hook`'s URL, signed now.
    pub async fn attempt(&self, hook: &Hook, delivery: &Delivery) -> Attempt {
        // Checked again at every attempt: a receiver the administrator has since taken out of
        // [webhooks] receivers gets nothing more, and the webhook stops saying so.
        if let Err(error) = self.receivers.check(&hook.url) {
            return Attempt::NotAllowed(error);
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature(
            self.signer.key(),
            hook.secret.as_deref(),
            &delivery.id,
            timestamp,
            &delivery.body,
        );
        let sent = self
            .client
            .post(&hook.url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Failed {
                    error: format!("{}: {}", hook.url, error_chain(&e)),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        if status == reqwest::StatusCode::GONE {
            return Attempt::Gone;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        Attempt::Failed {
            error: format!("{} answered {status}", hook.url),
            retry_after,
        }
    }
}
