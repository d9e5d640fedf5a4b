//! Fuzz targets for everything a node reads from outside, each a function of arbitrary bytes
//! that must return (never panic, never hang) whatever the bytes are:
//!
//! - [`proto`]: every protobuf message a peer or a file hands the node, decoded and re-encoded;
//! - [`catalog`]: catalog entries (JSON, `schema/catalog.schema.json`);
//! - [`import`]: export files (CSV, JSON lines, any encoding) checked against a catalog, and
//!   mapping files (TOML, `schema/mapping.schema.json`);
//! - [`batch`]: signed batches, both arbitrary and signed by a certified producer with an
//!   arbitrary header and records, verified and opened;
//! - [`requester`]: signed requesters, both arbitrary and signed with an arbitrary claim;
//! - [`directory`]: directory entries and commands applied to a directory's state.
//!
//! `ops/fuzz.sh` builds each as a libFuzzer binary (`fuzz_targets/`) with coverage
//! instrumentation on stable Rust and runs it from its corpus in `corpus/<target>/`. The test
//! `tests/corpus.rs` runs every target over its corpus and over `crashes/<target>/`, where an
//! input that once crashed a target is kept, so each is a test from then on.
//!
//! The first byte of an input picks a variant where a target has several; the rest is the input.

use std::sync::LazyLock;

use prost::Message;
use tierlink_core::catalog::{RecordSchema, parse_catalogs};
use tierlink_core::directory::{
    DirectoryCommand, DirectoryRequest, DirectoryState, SignedCommands,
};
use tierlink_core::identity::{
    CaFiles, EncryptionKeys, NodeCredentials, NodeKey, Tier, TrustedCa, Unit, generate_ca,
    issue_node_certificates,
};
use tierlink_core::import::{Encoding, Format, Mapping, Options};
use tierlink_core::members::Standing;
use tierlink_core::signed::{BatchOpener, BatchSigner, BatchVerifier, Recipient, requester};
use tierlink_proto::v1;

/// A fuzz target: takes any bytes, and returns.
pub type Target = fn(&[u8]);

/// The targets by name, as `ops/fuzz.sh` and the corpus test know them.
pub const TARGETS: [(&str, Target); 6] = [
    ("proto", proto),
    ("catalog", catalog),
    ("import", import),
    ("batch", batch),
    ("requester", requester),
    ("directory", directory),
];

/// Splits off the variant byte.
fn variant(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// Decodes `bytes` as `M`; what decodes must re-encode to bytes that decode to the same message.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(message) = M::decode(bytes) {
        let again = M::decode(message.encode_to_vec().as_slice()).expect("re-encoded decodes");
        assert_eq!(message, again, "a decoded message re-encodes to itself");
    }
}

/// Every message a node decodes from a peer, a relay or a batch file.
pub fn proto(data: &[u8]) {
    let (which, bytes) = variant(data);
    match which % 16 {
        0 => round_trip::<v1::SignedBatch>(bytes),
        1 => round_trip::<v1::BatchHeader>(bytes),
        2 => round_trip::<v1::RecordList>(bytes),
        3 => round_trip::<v1::SignedRequester>(bytes),
        4 => round_trip::<v1::Requester>(bytes),
        5 => round_trip::<v1::PutRecordsRequest>(bytes),
        6 => round_trip::<v1::QueryRequest>(bytes),
        7 => round_trip::<v1::HistoryRequest>(bytes),
        8 => round_trip::<v1::SubscribeRequest>(bytes),
        9 => round_trip::<v1::FollowBatch>(bytes),
        10 => round_trip::<v1::SubmitRequest>(bytes),
        11 => round_trip::<v1::ProposeRequest>(bytes),
        12 => round_trip::<v1::StatusResponse>(bytes),
        13 => round_trip::<v1::MembersResponse>(bytes),
        14 => round_trip::<v1::CatalogsResponse>(bytes),
        _ => round_trip::<v1::SourceOffsetRequest>(bytes),
    }
}

/// Catalog entries as `tierlink catalog publish` and the gateway read them.
pub fn catalog(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(catalogs) = parse_catalogs(text, "fuzz")
    {
        for catalog in &catalogs {
            let _ = RecordSchema::new(catalog);
        }
    }
}

/// The catalog the import target checks records against: job seekers, whose exports come with
/// a mapping (`schema/examples/job-seekers.mapping.toml`).
static JOB_SEEKERS: LazyLock<RecordSchema> = LazyLock::new(|| {
    let catalogs = parse_catalogs(
        include_str!("../../../schema/examples/job-seekers.json"),
        "job-seekers.json",
    )
    .expect("the example catalog parses");
    RecordSchema::new(&catalogs[0]).expect("the example catalog compiles")
});

/// An export file, or a mapping file and the file it maps, imported as the command line and the
/// gateway's upload do.
pub fn import(data: &[u8]) {
    let (which, bytes) = variant(data);
    let options = Options {
        format: if which & 1 == 0 {
            Format::Csv
        } else {
            Format::JsonLines
        },
        encoding: match (which >> 1) % 3 {
            0 => None,
            1 => Some(Encoding::Utf8),
            _ => Some(Encoding::Gb18030),
        },
    };
    // With bit 3 set, the input is a mapping, a NUL byte, then the file.
    let (mapping, file) = match (which & 8 != 0, bytes.iter().position(|b| *b == 0)) {
        (true, Some(nul)) => match std::str::from_utf8(&bytes[..nul]).map(Mapping::parse) {
            Ok(Ok(mapping)) => (Some(mapping), &bytes[nul + 1..]),
            _ => return,
        },
        _ => (None, bytes),
    };
    if let Ok(imported) =
        tierlink_core::import::import(file, &options, mapping.as_ref(), &JOB_SEEKERS)
    {
        let _ = imported.reject_file();
    }
}

/// A federation of two: a producer (420502) certified by the CA, and the city it seals to.
struct Federation {
    ca: TrustedCa,
    producer: BatchSigner,
    producer_key: NodeKey,
    city: Recipient,
    opener: BatchOpener,
}

static FEDERATION: LazyLock<Federation> = LazyLock::new(|| {
    let ca: CaFiles = generate_ca("fuzz").expect("a CA");
    let unit = Unit {
        code: "420502".parse().expect("a district code"),
        tier: Tier::District,
        parent: Some("420500".parse().expect("a city code")),
        name: "district".into(),
    };
    let keys = NodeCredentials::generate().expect("node keys");
    let certs = issue_node_certificates(&ca, &unit, &[], &keys).expect("certificates");
    let trusted = TrustedCa::from_pem(&ca.cert_pem).expect("the CA certificate");
    let producer = BatchSigner::new(&keys.signing_key_pem, &certs.signing_pem, &trusted)
        .expect("a batch signer");
    let producer_key =
        NodeKey::load(&keys.signing_key_pem, &certs.signing_pem, &trusted).expect("a node key");
    let city_keys = EncryptionKeys::generate().expect("encryption keys");
    let city = Recipient {
        node: "420500".parse().expect("a city code"),
        key: city_keys.current().public().clone(),
    };
    let opener = BatchOpener::new("420500".parse().expect("a city code"), city_keys);
    Federation {
        ca: trusted,
        producer,
        producer_key,
        city,
        opener,
    }
});

/// A signed batch as a consumer or a relay receives it: arbitrary (variant 0), or sealed by a
/// certified producer from an arbitrary header and arbitrary record bytes (variant 1: a 2-byte
/// little-endian header length, the header, the records), so the checks after the signature are
/// reached too.
pub fn batch(data: &[u8]) {
    let federation = &*FEDERATION;
    let verifier = BatchVerifier::new(federation.ca.clone());
    let (which, bytes) = variant(data);
    let batch = if which & 1 == 0 {
        match v1::SignedBatch::decode(bytes) {
            Ok(batch) => batch,
            Err(_) => return,
        }
    } else {
        let Some((length, rest)) = bytes.split_first_chunk::<2>() else {
            return;
        };
        let (header, records) =
            rest.split_at(usize::from(u16::from_le_bytes(*length)).min(rest.len()));
        let Ok(header) = v1::BatchHeader::decode(header) else {
            return;
        };
        let records = records.to_vec();
        federation.producer.seal(header, records, &federation.city)
    };
    if verifier.verify(&batch).is_ok() {
        let _ = federation.opener.open(&verifier, &batch);
    }
}

/// A signed requester as a producer receives it: arbitrary (variant 0), or an arbitrary claim
/// signed by the node's registered key (variant 1).
pub fn requester(data: &[u8]) {
    let federation = &*FEDERATION;
    let (which, bytes) = variant(data);
    let signed = if which & 1 == 0 {
        match v1::SignedRequester::decode(bytes) {
            Ok(signed) => signed,
            Err(_) => return,
        }
    } else {
        match v1::Requester::decode(bytes) {
            Ok(claim) => requester::sign(&federation.producer_key, &claim),
            Err(_) => return,
        }
    };
    let standing = Standing {
        signing_key: hex::encode(federation.producer_key.verifying_key().as_bytes()),
        status: "active".into(),
        ..Standing::default()
    };
    // Checked against what it claims to be for, so the checks past the signature are reached.
    let asked = v1::Requester::decode(signed.requester.as_slice()).unwrap_or_default();
    let Ok(producer) = asked.producer.parse() else {
        return;
    };
    if let Ok(claim) = requester::claim(&signed) {
        let _ = claim.verify(
            &signed,
            Some(&standing),
            &producer,
            &asked.catalog,
            &asked.request_id,
            asked.issued_at_micros,
        );
    }
}

/// A directory entry (variant 0: `SignedCommands` JSON, checked against the CA), or commands
/// (variant 1: a JSON array of commands, issued by the city) applied to a directory's state.
pub fn directory(data: &[u8]) {
    let federation = &*FEDERATION;
    let (which, bytes) = variant(data);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let mut state = DirectoryState::default();
    if which & 1 == 0 {
        if let Ok(signed) = serde_json::from_str::<SignedCommands>(text) {
            let _ = state.apply_signed(&signed, &federation.ca);
        }
    } else if let Ok(commands) = serde_json::from_str::<Vec<DirectoryCommand>>(text) {
        for command in commands {
            let _ = state.apply(&DirectoryRequest {
                issuer: "420500".parse().expect("a city code"),
                command,
            });
        }
    }
}
