//! A cross-check set up on a local federation, for the tests and the benchmark: the street's
//! sample residents, a copy a district holds with some records missing, some added and some
//! changed, and a checker role at the street granted both catalogs.

use std::collections::BTreeMap;

use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, PolicyCommand, Role, RowScope,
};
use tierlink_node::directory::DirectoryCommand::Policy;

use crate::federation::{FederationError, LocalFederation};
use crate::sample::{self, RESIDENTS_CATALOG};

/// The purpose the checker's grants state.
pub const PURPOSE: &str = "resident register cross-check";

/// The items the checker is granted in clear unless a grant says otherwise: the key, the join
/// item, the compared items, the item rows are scoped by, and the sex and birth date the ID
/// number gives away anyway (a grant that withheld them would be refused for it).
pub const GRANTED: [&str; 7] = [
    "person_id",
    "id_number",
    "sex",
    "birth_date",
    "name",
    "current_address",
    "community_code",
];

/// Records the district's copy changes: the first 10 of the overlap get another current
/// address, the next 5 another name.
pub const CHANGED: usize = 15;

/// The position of `item` in [`sample::RESIDENT_COLUMNS`].
pub fn column(item: &str) -> usize {
    sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == item)
        .expect("a sample column")
}

/// The street's `count` residents (sample rows `0..count`, seed 7) and a district's copy of
/// rows `count/5..count + count/4`: the first fifth only at the street, the last rows only at
/// the district, and the first [`CHANGED`] of the overlap changed.
pub fn residents_and_copy(street: &str, count: usize) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let all = sample::residents(street, count + count / 4, 7);
    let here = all[..count].to_vec();
    let mut copy = all[count / 5..].to_vec();
    let (name, address) = (column("name"), column("current_address"));
    for (n, row) in copy.iter_mut().enumerate().take(CHANGED) {
        if n < 10 {
            row[address] = format!("夷陵大道{n}号");
        } else {
            row[name] = format!("{}改", row[name]);
        }
    }
    (here, copy)
}

/// Defines role `name` at `unit`; returns its id, `UNIT/NAME`.
pub async fn define_role(
    federation: &LocalFederation,
    unit: &NodeCode,
    name: &str,
) -> Result<String, FederationError> {
    let role = Role {
        unit: unit.clone(),
        name: name.into(),
        department: "Grid Office".into(),
        post: name.into(),
    };
    let id = role.id();
    federation
        .issue(unit, vec![Policy(PolicyCommand::DefineRole(role))])
        .await?;
    Ok(id)
}

/// Grants `role` (of unit `grantee`) `producer`'s residents for [`PURPOSE`]: the [`GRANTED`]
/// items in clear unless `items` says otherwise, rows within `rows`, through an access request
/// the producer approves (the catalog is conditional).
pub async fn grant_residents(
    federation: &LocalFederation,
    (grantee, role): (&NodeCode, &str),
    producer: &NodeCode,
    id: &str,
    items: &[(&str, Action)],
    rows: Option<RowScope>,
) -> Result<(), FederationError> {
    let mut granted: BTreeMap<String, Action> = items
        .iter()
        .map(|(item, action)| (item.to_string(), *action))
        .collect();
    for item in GRANTED {
        granted.entry(item.into()).or_insert(Action::Clear);
    }
    grant(
        federation,
        (grantee, role),
        (producer, RESIDENTS_CATALOG),
        id,
        granted,
        rows,
    )
    .await
}

/// Grants `role` (of unit `grantee`) `items` of `producer`'s `catalog` for [`PURPOSE`], rows
/// within `rows`, through an access request the producer approves.
pub async fn grant(
    federation: &LocalFederation,
    (grantee, role): (&NodeCode, &str),
    (producer, catalog): (&NodeCode, &str),
    id: &str,
    items: BTreeMap<String, Action>,
    rows: Option<RowScope>,
) -> Result<(), FederationError> {
    let ask = PolicyCommand::RequestAccess(AccessRequest {
        id: id.into(),
        producer: producer.clone(),
        catalog: catalog.into(),
        grantee: Grantee::Role(role.into()),
        purpose: PURPOSE.into(),
        items: Vec::new(),
        requester: None,
        status: AccessStatus::Pending,
    });
    federation.issue(grantee, vec![Policy(ask)]).await?;
    let approve = PolicyCommand::ApproveAccess(Grant {
        id: id.into(),
        producer: producer.clone(),
        catalog: catalog.into(),
        grantee: Grantee::Role(role.into()),
        purpose: PURPOSE.into(),
        expires: "2099-12-31".into(),
        items,
        others: None,
        rows,
        delegated_from: None,
        access_request: Some(id.into()),
        issuer: None,
    });
    federation.issue(producer, vec![Policy(approve)]).await
}
