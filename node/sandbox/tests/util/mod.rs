//! Shared set-up for the end-to-end tests: a three-tier federation on loopback with the street
//! holding residents and buildings.
#![allow(dead_code)]

pub mod http;

use std::time::Duration;

use tempfile::TempDir;
use tierlink_client::NodeClient;
use tierlink_core::catalog::EXAMPLES;
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::sample;
use tierlink_store::audit::{AuditEntry, AuditFilter, AuditLog};

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
    federation_with(residents, |_| {}).await
}

/// As [`federation`], every node's `node.toml` changed by `configure` first (e.g. its limits).
pub async fn federation_with(
    residents: usize,
    configure: impl Fn(&mut tierlink_core::config::NodeConfig),
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let federation = LocalFederation::create_configured(dir.path(), default_units(), configure)
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

/// The street publishes its residents and buildings in the directory; returns what it published.
pub async fn publish(f: &Fixture) -> Vec<tierlink_core::catalog::Catalog> {
    let street = &f.clients[STREET];
    let revision = street.publish(&[RESIDENTS, BUILDINGS]).await.unwrap();
    f.federation.wait_for_revision(revision).await.unwrap();
    let replica = f.federation.replica(street.code()).unwrap();
    [RESIDENTS, BUILDINGS]
        .iter()
        .map(|code| replica.view(|s| s.catalogs[street.code()][*code].catalog.clone()))
        .collect()
}

/// Tokens of the principals [`with_policies`] adds.
pub struct Principals {
    /// zhao@420500, a city public-security analyst.
    pub city: String,
    /// li@420502, a district civil-affairs officer.
    pub district: String,
    /// wang@420502001, the street's grid worker.
    pub street: String,
}

/// The street publishes its catalogs in the directory and the three-tier policy of
/// [`tierlink_sandbox::sample::three_tier_policies`] is issued; one principal per tier is added.
pub async fn with_policies(f: &Fixture) -> Principals {
    let (city, district, street) = (
        f.clients[CITY].code().clone(),
        f.clients[DISTRICT].code().clone(),
        f.clients[STREET].code().clone(),
    );
    publish(f).await;
    for (issuer, command) in sample::three_tier_policies(&city, &district, &street, "2099-12-31") {
        f.federation
            .issue(
                &issuer,
                vec![tierlink_node::directory::DirectoryCommand::Policy(command)],
            )
            .await
            .unwrap();
    }
    let add = |node: &tierlink_core::identity::NodeCode, name: &str, role: String| {
        f.federation
            .add_principal(node, name, &[role.as_str()])
            .unwrap()
    };
    Principals {
        city: add(&city, "zhao", format!("{city}/ps-analyst")),
        district: add(&district, "li", format!("{district}/civil-affairs")),
        street: add(&street, "wang", format!("{street}/grid-worker")),
    }
}

/// A credential for `principal` acting in `role` for `purpose`.
pub fn credential(
    principal: &str,
    token: &str,
    role: &str,
    purpose: &str,
) -> Option<tierlink_proto::v1::Credential> {
    Some(tierlink_proto::v1::Credential {
        principal: principal.into(),
        token: token.into(),
        role: role.into(),
        purpose: purpose.into(),
        grant: String::new(),
    })
}

/// A query of the street's residents, read as `credential` (or as the asking node).
pub fn residents_query(
    credential: Option<tierlink_proto::v1::Credential>,
) -> tierlink_proto::v1::QueryRequest {
    tierlink_proto::v1::QueryRequest {
        scope: Some(tierlink_proto::v1::ReadScope {
            catalog: RESIDENTS.into(),
            target: "420502001".into(),
            credential,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub const SECURITY: &str = "population security check";
pub const ALLOWANCE: &str = "subsistence allowance review";

/// Purpose of the grants [`open_policies`] makes.
pub const EXCHANGE: &str = "exchange tests";

/// Credentials of a city analyst and a district officer granted every shared item of the
/// street's residents and buildings in clear.
pub struct Open {
    pub city: Option<tierlink_proto::v1::Credential>,
    pub district: Option<tierlink_proto::v1::Credential>,
}

/// The street publishes its catalogs and grants the city's `analyst` and the district's
/// `officer` every shared item of both in clear (residents, a conditional catalog, through
/// approved access requests).
pub async fn open_policies(f: &Fixture) -> Open {
    use tierlink_core::policy::{
        AccessRequest, AccessStatus, Action, Grant, Grantee, PolicyCommand, Role,
    };
    use tierlink_node::directory::DirectoryCommand::Policy;
    let street = f.clients[STREET].code().clone();
    let catalogs = publish(f).await;
    let mut open = Vec::new();
    for (n, role) in [(CITY, "analyst"), (DISTRICT, "officer")] {
        let unit = f.clients[n].code().clone();
        let define = PolicyCommand::DefineRole(Role {
            unit: unit.clone(),
            name: role.into(),
            department: "Data Office".into(),
            post: role.into(),
        });
        f.federation
            .issue(&unit, vec![Policy(define)])
            .await
            .unwrap();
        let grantee = Grantee::Role(format!("{unit}/{role}"));
        for catalog in &catalogs {
            let id = format!("{role}-{}", &catalog.code[..3]);
            let grant = Grant {
                id: id.clone(),
                producer: street.clone(),
                catalog: catalog.code.clone(),
                grantee: grantee.clone(),
                purpose: EXCHANGE.into(),
                expires: "2099-12-31".into(),
                items: catalog
                    .items
                    .iter()
                    .map(|i| (i.code.clone(), Action::Clear))
                    .collect(),
                others: None,
                rows: None,
                delegated_from: None,
                access_request: None,
                issuer: None,
            };
            if catalog.sharing.kind == tierlink_core::catalog::SharingType::Conditional {
                let ask = PolicyCommand::RequestAccess(AccessRequest {
                    id: id.clone(),
                    producer: street.clone(),
                    catalog: catalog.code.clone(),
                    grantee: grantee.clone(),
                    purpose: EXCHANGE.into(),
                    items: Vec::new(),
                    requester: None,
                    status: AccessStatus::Pending,
                });
                f.federation.issue(&unit, vec![Policy(ask)]).await.unwrap();
                let approve = PolicyCommand::ApproveAccess(Grant {
                    access_request: Some(id),
                    ..grant
                });
                f.federation
                    .issue(&street, vec![Policy(approve)])
                    .await
                    .unwrap();
            } else {
                f.federation
                    .issue(&street, vec![Policy(PolicyCommand::Grant(grant))])
                    .await
                    .unwrap();
            }
        }
        let token = f
            .federation
            .add_principal(&unit, "staff", &[&format!("{unit}/{role}")])
            .unwrap();
        open.push(credential(
            "staff",
            &token,
            &format!("{unit}/{role}"),
            EXCHANGE,
        ));
    }
    Open {
        district: open.pop().unwrap(),
        city: open.pop().unwrap(),
    }
}

/// The street's own read of its residents in batches of 100, as the case's streams ask.
pub fn own_query() -> tierlink_proto::v1::QueryRequest {
    tierlink_proto::v1::QueryRequest {
        scope: Some(tierlink_proto::v1::ReadScope {
            catalog: RESIDENTS.into(),
            ..Default::default()
        }),
        batch_size: 100,
        ..Default::default()
    }
}

/// A principal's query of the street's residents, through its own node.
pub fn principal_query(
    credential: &Option<tierlink_proto::v1::Credential>,
) -> tierlink_proto::v1::QueryRequest {
    tierlink_proto::v1::QueryRequest {
        scope: Some(tierlink_proto::v1::ReadScope {
            catalog: RESIDENTS.into(),
            target: "420502001".into(),
            credential: credential.clone(),
            ..Default::default()
        }),
        batch_size: 100,
        ..Default::default()
    }
}

/// Waits (up to 30 s) for an entry of `audit` that `wanted` picks: for entries a node may keep
/// after the caller has its answer (a read its client left or stopped taking, a case's
/// delivery). A read that ends with its last answer is audited before that answer.
pub async fn audited(audit: &AuditLog, wanted: impl Fn(&AuditEntry) -> bool) -> AuditEntry {
    for _ in 0..300 {
        let entries = audit.query(&AuditFilter::default(), 1000).unwrap();
        if let Some(entry) = entries.into_iter().find(|e| wanted(e)) {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no such audit entry after 30 s");
}
