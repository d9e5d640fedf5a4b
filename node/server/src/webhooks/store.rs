//! Webhooks as the node keeps them, in its store's `webhooks` keyspace:
//!
//! ```text
//! h/ID      the webhook (JSON)
//! t/ID      the resume token after the last batch queued
//! n/ID      the number the next delivery is queued under (u64, big-endian)
//! q/ID/N    a pending delivery (JSON), N big-endian: the queue, in order
//! d/ID/N    a dead letter (JSON): a delivery whose last attempt failed
//! ```
//!
//! A batch is queued and the resume token advanced in one atomic apply, so a crash between the
//! feed and the queue neither loses a batch nor queues one twice.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tierlink_store::{Keyspace, StoreError};

/// A webhook: whose feed of which catalog goes where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hook {
    /// `wh_` and 16 hex digits.
    pub id: String,
    /// The catalog followed.
    pub catalog: String,
    /// The node producing it.
    pub target: String,
    /// The principal of this node the feed is read as, its role, purpose and grant (empty: the
    /// producer's choice).
    pub principal: String,
    /// The token the principal reads with: kept so the feed can be opened again.
    pub token: String,
    /// The role it acts in.
    pub role: String,
    /// The purpose it states.
    pub purpose: String,
    /// The grant asked for, or empty.
    pub grant: String,
    /// Where deliveries go.
    pub url: String,
    /// The `whsec_` secret of `v1` signatures, when the webhook has one.
    pub secret: Option<String>,
    /// When it was added, microseconds since the Unix epoch.
    pub created_at_micros: i64,
    /// Why it stopped; empty while it runs.
    pub stopped: String,
}

/// One delivery: a batch of the feed as the body POSTed, and how its attempts went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// The `webhook-id`, `msg_…`: the same on every attempt and replay.
    pub id: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    /// Records in it.
    pub records: u64,
    /// The resume token after its records.
    pub resume_token: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due, milliseconds since the Unix epoch.
    pub next_at_ms: i64,
    /// The last attempt's status or error.
    pub last_error: String,
    /// When it went to the dead-letter list, microseconds since the Unix epoch; 0 while queued.
    pub dead_at_micros: i64,
}

/// Where one entry of the queue or the dead-letter list is kept.
pub type Place = Vec<u8>;

/// The `webhooks` keyspace.
pub struct Hooks {
    space: Keyspace,
    /// Held while a delivery number is taken and used: the feed and a replay both queue.
    numbering: Mutex<()>,
}

fn key(kind: &str, id: &str) -> Vec<u8> {
    format!("{kind}/{id}").into_bytes()
}

/// The first key of `kind`'s entries of webhook `id`, and the first key after them.
fn bounds(kind: &str, id: &str) -> (Vec<u8>, Vec<u8>) {
    // '0' follows '/'.
    (
        format!("{kind}/{id}/").into_bytes(),
        format!("{kind}/{id}0").into_bytes(),
    )
}

fn numbered(kind: &str, id: &str, n: u64) -> Vec<u8> {
    let mut k = bounds(kind, id).0;
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("webhook records serialize")
}

fn parse<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("webhooks: {e}")))
}

impl Hooks {
    /// Webhooks kept in `space`.
    pub fn new(space: Keyspace) -> Self {
        Self {
            space,
            numbering: Mutex::new(()),
        }
    }

    /// Every webhook, by id.
    pub fn all(&self) -> Result<Vec<Hook>, StoreError> {
        self.space
            .range(b"h/", Some(b"h0"))?
            .iter()
            .map(|(_, v)| parse(v))
            .collect()
    }

    /// The webhook `id`, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<Hook>, StoreError> {
        self.space
            .get(&key("h", id))?
            .map(|v| parse(&v))
            .transpose()
    }

    /// Keeps a new webhook, its feed starting after `token`.
    pub fn add(&self, hook: &Hook, token: &str) -> Result<(), StoreError> {
        self.space.apply([
            (key("h", &hook.id), Some(json(hook))),
            (key("t", &hook.id), Some(token.as_bytes().to_vec())),
        ])
    }

    /// Clears why `hook` stopped, with a new token for its principal when given.
    pub fn resume(&self, hook: &mut Hook, token: Option<&str>) -> Result<(), StoreError> {
        hook.stopped.clear();
        if let Some(token) = token {
            token.clone_into(&mut hook.token);
        }
        self.space.apply([(key("h", &hook.id), Some(json(hook)))])
    }

    /// Records why webhook `id` stopped.
    pub fn stop(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let Some(mut hook) = self.get(id)? else {
            return Ok(());
        };
        hook.stopped = reason.to_owned();
        self.space.apply([(key("h", id), Some(json(&hook)))])
    }

    /// Forgets webhook `id` with its queue and dead letters; returns how many deliveries went.
    pub fn remove(&self, id: &str) -> Result<u64, StoreError> {
        let _numbering = self.numbering.lock().unwrap_or_else(|p| p.into_inner());
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for kind in ["q", "d"] {
            let (from, to) = bounds(kind, id);
            gone.extend(
                self.space
                    .range(&from, Some(&to))?
                    .into_iter()
                    .map(|(k, _)| k),
            );
        }
        let dropped = gone.len() as u64;
        gone.extend(["h", "t", "n"].map(|kind| key(kind, id)));
        self.space.apply(gone.into_iter().map(|k| (k, None)))?;
        Ok(dropped)
    }

    /// The resume token after the last batch queued for webhook `id`.
    pub fn token(&self, id: &str) -> Result<String, StoreError> {
        Ok(self
            .space
            .get(&key("t", id))?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    /// The number webhook `id`'s next delivery is queued under.
    fn next_number(&self, id: &str) -> Result<u64, StoreError> {
        match self.space.get(&key("n", id))? {
            Some(v) => Ok(u64::from_be_bytes(v.as_slice().try_into().map_err(
                |_| StoreError::Corrupt("webhooks: a delivery number".into()),
            )?)),
            None => Ok(0),
        }
    }

    /// The change that makes `next` webhook `id`'s next delivery number.
    fn numbering(id: &str, next: u64) -> (Vec<u8>, Option<Vec<u8>>) {
        (key("n", id), Some(next.to_be_bytes().to_vec()))
    }

    /// Queues the delivery `make` builds from its number, and moves webhook `id`'s resume token
    /// to `token`, in one atomic apply.
    pub fn enqueue(
        &self,
        id: &str,
        token: &str,
        make: impl FnOnce(u64) -> Delivery,
    ) -> Result<(), StoreError> {
        let _numbering = self.numbering.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.next_number(id)?;
        self.space.apply([
            (numbered("q", id, n), Some(json(&make(n)))),
            Self::numbering(id, n + 1),
            (key("t", id), Some(token.as_bytes().to_vec())),
        ])
    }

    /// Writes everything applied so far to disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.space.flush().await
    }

    /// The delivery at the head of webhook `id`'s queue.
    pub fn head(&self, id: &str) -> Result<Option<(Place, Delivery)>, StoreError> {
        let (from, to) = bounds("q", id);
        let first = self.space.range(&from, Some(&to))?.into_iter().next();
        first.map(|(k, v)| Ok((k, parse(&v)?))).transpose()
    }

    /// Deliveries queued for webhook `id`.
    pub fn pending(&self, id: &str) -> Result<u64, StoreError> {
        self.count("q", id)
    }

    fn count(&self, kind: &str, id: &str) -> Result<u64, StoreError> {
        let (from, to) = bounds(kind, id);
        Ok(self.space.range(&from, Some(&to))?.len() as u64)
    }

    /// Keeps what an attempt changed of the queued delivery at `place`.
    pub fn update(&self, place: &Place, delivery: &Delivery) -> Result<(), StoreError> {
        self.space.apply([(place.clone(), Some(json(delivery)))])
    }

    /// Removes the delivered delivery at `place` from its queue.
    pub fn delivered(&self, place: &Place) -> Result<(), StoreError> {
        self.space.apply([(place.clone(), None)])
    }

    /// Moves the queued delivery at `place` of webhook `id` to its dead letters.
    pub fn kill(&self, id: &str, place: &Place, delivery: &Delivery) -> Result<(), StoreError> {
        let n = place
            .len()
            .checked_sub(8)
            .map_or(&[][..], |at| &place[at..]);
        let mut dead = bounds("d", id).0;
        dead.extend_from_slice(n);
        self.space
            .apply([(place.clone(), None), (dead, Some(json(delivery)))])
    }

    /// The dead letters of webhook `id`, oldest first.
    pub fn dead(&self, id: &str) -> Result<Vec<Delivery>, StoreError> {
        let (from, to) = bounds("d", id);
        self.space
            .range(&from, Some(&to))?
            .iter()
            .map(|(_, v)| parse(v))
            .collect()
    }

    /// Dead letters of webhook `id`.
    pub fn dead_count(&self, id: &str) -> Result<u64, StoreError> {
        self.count("d", id)
    }

    /// Moves webhook `id`'s dead letter `delivery` (every one when `None`) to the end of its
    /// queue, due at `now_ms` with its attempts counted afresh and its `webhook-id` unchanged.
    /// Returns how many moved.
    pub fn replay(&self, id: &str, delivery: Option<&str>, now_ms: i64) -> Result<u32, StoreError> {
        let _numbering = self.numbering.lock().unwrap_or_else(|p| p.into_inner());
        let (from, to) = bounds("d", id);
        let mut n = self.next_number(id)?;
        let mut changes = Vec::new();
        for (place, value) in self.space.range(&from, Some(&to))? {
            let mut letter: Delivery = parse(&value)?;
            if delivery.is_some_and(|wanted| wanted != letter.id) {
                continue;
            }
            letter.attempts = 0;
            letter.next_at_ms = now_ms;
            letter.dead_at_micros = 0;
            changes.push((place, None));
            changes.push((numbered("q", id, n), Some(json(&letter))));
            n += 1;
        }
        let replayed = (changes.len() / 2) as u32;
        if replayed > 0 {
            changes.push(Self::numbering(id, n));
            self.space.apply(changes)?;
        }
        Ok(replayed)
    }
}
