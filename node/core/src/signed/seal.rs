//! Sealing a message to one node: an HPKE context (RFC 9180, base mode, DHKEM(X25519,
//! HKDF-SHA256) / HKDF-SHA256 / export-only) per message, from which a fresh AES-256-GCM key is
//! exported (§5.3) for the message itself. Batches of records and case deliveries are sealed so;
//! each use passes its own `info`, which binds the ciphertext to its sender, recipient and place.

use hpke::aead::ExportOnlyAead;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::identity::{EncryptionKey, Kem, RecipientKey, rng};

/// The exporter context of a message's AES key.
const KEY_CONTEXT: &[u8] = b"tierlink.v1 records key";

/// The AES-256-GCM key of one message, exported from its HPKE context. Each key seals one
/// message, so the nonce is fixed at zero.
fn message_key(
    export: impl FnOnce(&mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Option<LessSafeKey> {
    let mut key = [0u8; 32];
    export(&mut key).ok()?;
    UnboundKey::new(&AES_256_GCM, &key)
        .ok()
        .map(LessSafeKey::new)
}

/// Seals `plain` to `to` under `info`: returns the encapsulated key (32 bytes) and the ciphertext
/// followed by its 16-byte tag.
pub(crate) fn seal(to: &RecipientKey, info: &[u8], mut plain: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    // A parsed RecipientKey encapsulates (its check refuses keys of small order), 32 bytes
    // are within HKDF-SHA256's export limit, and a message is far below AES-GCM's 64 GiB.
    let (encapsulated, context) = hpke::setup_sender::<ExportOnlyAead, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        to.hpke(),
        info,
        &mut rng(),
    )
    .expect("encapsulating to a checked X25519 key succeeds");
    let key =
        message_key(|out| context.export(KEY_CONTEXT, out)).expect("a 32-byte key is exported");
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut plain,
        )
        .expect("a message is within AES-GCM's limit");
    plain.extend_from_slice(tag.as_ref());
    (encapsulated.to_bytes().to_vec(), plain)
}

/// Opens what [`seal`] sealed to `key` under the same `info`; `None` when it does not open
/// (another key, another info, or altered bytes).
pub(crate) fn open(
    key: &EncryptionKey,
    encapsulated: &[u8],
    info: &[u8],
    mut sealed: Vec<u8>,
) -> Option<Vec<u8>> {
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated).ok()?;
    let context = hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, Kem>(
        &OpModeR::Base,
        key.hpke(),
        &encapsulated,
        info,
    )
    .ok()?;
    let key = message_key(|out| context.export(KEY_CONTEXT, out))?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut sealed,
        )
        .ok()?
        .len();
    sealed.truncate(plain);
    Some(sealed)
}
