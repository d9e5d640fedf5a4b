//! Shared set-up for the end-to-end tests: a three-tier federation on loopback with the street
//! holding residents and buildings.
#![allow(dead_code)]

use tempfile::TempDir;
use tierlink::catalog::EXAMPLES;
use tierlink::exchange::client::NodeClient;
use tierlink::federation::{LocalFederation, default_units};
use tierlink::sample;

pub const CITY: usize = 0;
pub const DISTRICT: usize = 1;
pub const STREET: usize = 2;
pub const RESIDENTS: &str = "101001001/000001";
pub const BUILDINGS: &str = "103001001/000001";

pub struct Fixture {
    pub dir: TempDir,
    pub federation: LocalFederation,
    pub clients: Vec<NodeClient>,
}

pub fn columns(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

pub fn example(file: &str) -> String {
    EXAMPLES
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, t)| t.to_string())
        .expect("example exists")
}

/// A running federation whose street holds `residents` residents and 50 buildings.
pub async fn federation(residents: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::create(dir.path(), default_units())
        .await
        .unwrap();
    let clients: Vec<NodeClient> = federation
        .nodes
        .iter()
        .map(|n| NodeClient::open(n.dir.clone()).unwrap())
        .collect();
    let street = &clients[STREET];
    street.put_catalog(example("residents.json")).await.unwrap();
    street.put_catalog(example("buildings.json")).await.unwrap();
    if residents > 0 {
        street
            .put_records(
                RESIDENTS,
                columns(sample::RESIDENT_COLUMNS),
                sample::residents("420502001", residents, 7),
            )
            .await
            .unwrap();
    }
    street
        .put_records(
            BUILDINGS,
            columns(sample::BUILDING_COLUMNS),
            sample::buildings("420502001", 50, 8),
        )
        .await
        .unwrap();
    Fixture {
        dir,
        federation,
        clients,
    }
}
