use super::*;
use crate::catalog::{EXAMPLES, parse_catalogs};
use crate::identity::Unit;

fn member(code: &str, tier: Tier, parent: Option<&str>) -> Member {
    Member {
        unit: Unit {
            code: code.parse().unwrap(),
            tier,
            parent: parent.map(|p| p.parse().unwrap()),
            name: code.into(),
        },
        endpoint: format!("https://{code}.example:7443"),
        signing_key: "00".repeat(32),
        signing_certificate: String::new(),
        tls_fingerprint: "11".repeat(32),
        tls_certificate: String::new(),
        retiring_tls: Vec::new(),
        retired_keys: Vec::new(),
        encryption_key: String::new(),
        status: MemberStatus::Active,
    }
}

fn by(issuer: &str, command: DirectoryCommand) -> DirectoryRequest {
    DirectoryRequest {
        issuer: issuer.parse().unwrap(),
        command,
    }
}

fn applied(reply: DirectoryReply) -> u64 {
    match reply {
        DirectoryReply::Applied { revision } => revision,
        DirectoryReply::Rejected { reason } => panic!("rejected: {reason}"),
    }
}

fn rejected(reply: DirectoryReply) -> String {
    match reply {
        DirectoryReply::Rejected { reason } => reason,
        other => panic!("applied: {other:?}"),
    }
}

/// A city, a district registered by the city, a street that asked to join and was approved.
fn federation() -> DirectoryState {
    let mut s = DirectoryState::default();
    applied(s.apply(&by(
        "420500",
        DirectoryCommand::Register(member("420500", Tier::City, None)),
    )));
    applied(s.apply(&by(
        "420500",
        DirectoryCommand::Register(member("420502", Tier::District, Some("420500"))),
    )));
    applied(s.apply(&by(
        "420502001",
        DirectoryCommand::Register(member("420502001", Tier::Street, Some("420502"))),
    )));
    assert_eq!(
        s.members[&"420502001".parse().unwrap()].status,
        MemberStatus::Pending
    );
    applied(s.apply(&by(
        "420502",
        DirectoryCommand::Approve("420502001".parse().unwrap()),
    )));
    s
}

#[test]
fn the_city_founds_parents_register_and_approve() {
    let s = federation();
    assert_eq!(s.revision, 4);
    assert!(s.members.values().all(|m| m.status == MemberStatus::Active));

    let mut empty = DirectoryState::default();
    let reason = rejected(empty.apply(&by(
        "420502",
        DirectoryCommand::Register(member("420502", Tier::District, Some("420500"))),
    )));
    assert!(reason.contains("the city founds it"), "{reason}");
    assert_eq!(empty, DirectoryState::default());
}

#[test]
fn nobody_changes_another_units_entries() {
    let mut s = federation();
    let before = s.clone();
    let cases = [
        // A district may not register a street of another district, nor the city's district be
        // registered by a street.
        by(
            "420502",
            DirectoryCommand::Register(member("420503001", Tier::Street, Some("420503"))),
        ),
        by(
            "420502001",
            DirectoryCommand::Register(member("420503", Tier::District, Some("420500"))),
        ),
        // Only the parent approves or suspends.
        by(
            "420500",
            DirectoryCommand::Suspend("420502001".parse().unwrap()),
        ),
        by(
            "420502001",
            DirectoryCommand::Suspend("420502".parse().unwrap()),
        ),
        // Registering twice, approving the approved.
        by(
            "420500",
            DirectoryCommand::Register(member("420502", Tier::District, Some("420500"))),
        ),
        by(
            "420502",
            DirectoryCommand::Approve("420502001".parse().unwrap()),
        ),
        // Withdrawing what one never published.
        by(
            "420502",
            DirectoryCommand::Withdraw("101001001/000001".into()),
        ),
        // An unknown issuer.
        by(
            "420599",
            DirectoryCommand::Withdraw("101001001/000001".into()),
        ),
    ];
    for request in cases {
        let reason = rejected(s.apply(&request));
        assert!(reason.starts_with(&request.to_string()), "{reason}");
        assert_eq!(s, before, "{request} changed the state");
    }
}

#[test]
fn members_publish_and_withdraw_their_own_catalogs() {
    let mut s = federation();
    let residents = parse_catalogs(EXAMPLES[0].1, EXAMPLES[0].0)
        .unwrap()
        .remove(0);
    // Items that are not shared never leave the node, not even as catalog entries.
    let reason = rejected(s.apply(&by(
        "420502001",
        DirectoryCommand::Publish(residents.clone()),
    )));
    assert!(reason.contains("shared view"), "{reason}");
    let residents = residents.shared_view();
    let revision = applied(s.apply(&by(
        "420502001",
        DirectoryCommand::Publish(residents.clone()),
    )));
    let street: NodeCode = "420502001".parse().unwrap();
    assert_eq!(s.catalogs[&street][&residents.code].revision, revision);

    // The district cannot withdraw the street's catalog; the street can.
    rejected(s.apply(&by(
        "420502",
        DirectoryCommand::Withdraw(residents.code.clone()),
    )));
    applied(s.apply(&by(
        "420502001",
        DirectoryCommand::Withdraw(residents.code.clone()),
    )));
    assert!(s.catalogs.is_empty());

    // A suspended member publishes nothing; an invalid catalog is refused.
    applied(s.apply(&by(
        "420502",
        DirectoryCommand::Suspend("420502001".parse().unwrap()),
    )));
    assert!(
        rejected(s.apply(&by(
            "420502001",
            DirectoryCommand::Publish(residents.clone())
        )))
        .contains("suspended")
    );
    let mut bad = residents;
    bad.items.clear();
    assert!(rejected(s.apply(&by("420502", DirectoryCommand::Publish(bad)))).contains("items"));
}

#[test]
fn replicas_applying_the_same_requests_agree() {
    let residents = parse_catalogs(EXAMPLES[0].1, EXAMPLES[0].0)
        .unwrap()
        .remove(0);
    let requests = [
        by(
            "420500",
            DirectoryCommand::Register(member("420500", Tier::City, None)),
        ),
        by("420502", DirectoryCommand::Publish(residents.clone())),
        by(
            "420500",
            DirectoryCommand::Register(member("420502", Tier::District, Some("420500"))),
        ),
        by("420502", DirectoryCommand::Publish(residents)),
    ];
    let run = || {
        let mut s = DirectoryState::default();
        let replies: Vec<DirectoryReply> = requests.iter().map(|r| s.apply(r)).collect();
        (serde_json::to_string(&s).unwrap(), replies)
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(
        matches!(a.1[1], DirectoryReply::Rejected { .. }),
        "published before it was a member"
    );
}

#[test]
fn the_city_names_the_voters_among_its_active_districts() {
    let mut s = federation();
    let city: NodeCode = "420500".parse().unwrap();
    assert_eq!(s.voters, [city.clone()].into());
    applied(s.apply(&by(
        "420500",
        DirectoryCommand::Register(member("420503", Tier::District, Some("420500"))),
    )));
    let set = |codes: &[&str]| {
        DirectoryCommand::SetVoters(codes.iter().map(|c| c.parse().unwrap()).collect())
    };
    let before = s.clone();
    for (issuer, voters, why) in [
        (
            "420502",
            &["420500", "420502", "420503"][..],
            "only the city",
        ),
        ("420500", &["420500", "420502"][..], "1, 3 or 5"),
        (
            "420500",
            &["420502", "420503", "420502001"][..],
            "1, 3 or 5",
        ),
        (
            "420500",
            &["420500", "420502", "420502001"][..],
            "only districts vote",
        ),
        (
            "420500",
            &["420500", "420502", "420509"][..],
            "not a member",
        ),
    ] {
        let reason = rejected(s.apply(&by(issuer, set(voters))));
        assert!(reason.contains(why), "{reason}");
        assert_eq!(s, before);
    }
    applied(s.apply(&by("420500", set(&["420500", "420502", "420503"]))));
    assert_eq!(s.voters.len(), 3);
    // A voter cannot be suspended before it is replaced.
    let reason = rejected(s.apply(&by(
        "420500",
        DirectoryCommand::Suspend("420503".parse().unwrap()),
    )));
    assert!(reason.contains("votes in the directory"), "{reason}");
}

#[test]
fn policies_follow_the_published_catalogs_and_audit_anchors_only_grow() {
    use crate::policy::{Grant, Grantee, PolicyCommand, Role};
    let mut s = federation();
    let buildings = parse_catalogs(EXAMPLES[1].1, "b")
        .unwrap()
        .remove(0)
        .shared_view();
    let role = PolicyCommand::DefineRole(Role {
        unit: "420502".parse().unwrap(),
        name: "housing".into(),
        department: "Housing Bureau".into(),
        post: "officer".into(),
    });
    applied(s.apply(&by("420502", DirectoryCommand::Policy(role))));
    let grant = Grant {
        id: "g1".into(),
        producer: "420502001".parse().unwrap(),
        catalog: buildings.code.clone(),
        grantee: Grantee::Role("420502/housing".into()),
        purpose: "safety inspection".into(),
        expires: "2027-12-31".into(),
        items: Default::default(),
        others: Some(crate::policy::Action::Clear),
        rows: None,
        delegated_from: None,
        access_request: None,
        issuer: None,
    };
    let command = || DirectoryCommand::Policy(PolicyCommand::Grant(grant.clone()));
    let reason = rejected(s.apply(&by("420502001", command())));
    assert!(reason.contains("has published no catalog"), "{reason}");
    applied(s.apply(&by("420502001", DirectoryCommand::Publish(buildings))));
    applied(s.apply(&by("420502001", command())));
    assert_eq!(
        s.policies.grants["g1"].issuer,
        Some("420502001".parse().unwrap())
    );

    let anchor = |sequence, head: &str| DirectoryCommand::AnchorAudit {
        sequence,
        head: head.into(),
    };
    applied(s.apply(&by("420502001", anchor(10, &"ab".repeat(32)))));
    let reason = rejected(s.apply(&by("420502001", anchor(9, &"cd".repeat(32)))));
    assert!(reason.contains("only grows"), "{reason}");
    assert!(rejected(s.apply(&by("420502001", anchor(11, "xyz")))).contains("hex"));
    assert_eq!(s.anchors[&"420502001".parse().unwrap()].sequence, 10);
}

#[test]
fn a_member_or_its_parent_revokes_its_certificates_and_rotations_come_signed() {
    let mut s = federation();
    let street: NodeCode = "420502001".parse().unwrap();
    let revoke = |fingerprint: &str| DirectoryCommand::Revoke {
        node: street.clone(),
        tls_fingerprint: fingerprint.into(),
    };
    s.members.get_mut(&street).unwrap().retiring_tls = vec!["22".repeat(32)];
    let before = s.clone();
    let why = rejected(s.apply(&by("420500", revoke(&"22".repeat(32)))));
    assert!(why.contains("only 420502001 itself or its parent"), "{why}");
    let why = rejected(s.apply(&by("420502", revoke(&"33".repeat(32)))));
    assert!(
        why.contains("is not a certificate 420502001 is accepted with"),
        "{why}"
    );
    // A rotation names certificates only the CA can vouch for: it comes in a signed entry.
    let rotate = DirectoryCommand::Rotate(super::Rotation {
        node: street.clone(),
        tls_certificate: Some(String::new()),
        signing_certificate: None,
        encryption_key: None,
        at_micros: 0,
    });
    let why = rejected(s.apply(&by("420502001", rotate)));
    assert!(why.contains("only from a signed entry"), "{why}");
    assert_eq!(s, before, "refused changes change nothing");

    applied(s.apply(&by("420502001", revoke(&"22".repeat(32)))));
    assert!(s.members[&street].retiring_tls.is_empty());
    applied(s.apply(&by("420502", revoke(&"11".repeat(32)))));
    let standing = crate::members::Standing::from(&s.members[&street]);
    assert!(standing.tls_fingerprints.is_empty());
    let why = standing.presents(&street, &"11".repeat(32)).unwrap_err();
    assert!(why.contains("no TLS certificate registered"), "{why}");
}

#[test]
fn encryption_keys_are_checked_and_rotated_in() {
    let mut s = federation();
    let street: NodeCode = "420502001".parse().unwrap();
    // A point of small order (here zero) is one no producer could seal to.
    let why = encryption_key(&street, &"00".repeat(32)).unwrap_err();
    assert!(why.contains("small order"), "{why}");
    let why = encryption_key(&street, "abcd").unwrap_err();
    assert!(why.contains("32 bytes"), "{why}");

    let key = crate::identity::EncryptionKey::generate().unwrap();
    let hex = key.public().to_hex();
    let rotation = super::Rotation {
        node: street.clone(),
        tls_certificate: None,
        signing_certificate: None,
        encryption_key: Some(hex.clone()),
        at_micros: 0,
    };
    let proven = |r: &super::Rotation| ProvenRotation {
        tls: None,
        signing: None,
        encryption: Some(encryption_key(&r.node, r.encryption_key.as_ref().unwrap()).unwrap()),
    };
    let by_street: NodeCode = street.clone();
    s.rotate(&by_street, &rotation, proven(&rotation)).unwrap();
    assert_eq!(s.members[&street].encryption_key, hex);
    let standing = crate::members::Standing::from(&s.members[&street]);
    assert_eq!(standing.recipient(&street).unwrap(), *key.public());
    let why = s
        .rotate(&by_street, &rotation, proven(&rotation))
        .unwrap_err();
    assert!(why.contains("already has this encryption key"), "{why}");
    // A member registered without a key is told how to get one.
    let why = crate::members::Standing::from(&s.members[&"420502".parse().unwrap()])
        .recipient(&"420502".parse().unwrap())
        .unwrap_err();
    assert!(why.contains("tierlink cert rotate"), "{why}");
}
