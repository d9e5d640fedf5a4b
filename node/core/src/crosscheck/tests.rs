use super::*;
use crate::catalog::EXAMPLES;

fn terms() -> Terms {
    Terms {
        run: "cc_0123456789abcdef".into(),
        initiator: "420502001:101001001/000001".into(),
        counterpart: "420502:101001001/000001".into(),
        join: "id".into(),
        compared: vec!["name".into(), "address".into()],
    }
}

fn entry(key: &str, join: &str, name: &str, address: &str) -> Entry {
    Entry {
        key: key.into(),
        join: join.into(),
        values: vec![name.into(), address.into()],
    }
}

fn party(entries: Vec<Entry>, reference_key: u8) -> Party {
    let prepared = Prepared {
        entries,
        not_compared: Vec::new(),
    };
    Party::new(terms(), prepared, &[reference_key; 32]).unwrap()
}

fn status_of<'a>(outcome: &'a Outcome, key: &str) -> &'a Status {
    &outcome.own.iter().find(|r| r.key == key).unwrap().status
}

/// A street's collection and a district's register: one match, one record differing in its
/// address, one differing in both items, and one record only each side holds.
fn street_and_district() -> (Party, Party) {
    let street = party(
        vec![
            entry("s1", "420502199001010011", "王伟", "东山大道1号"),
            entry("s2", "420502199001010022", "李娜", "东山大道2号"),
            entry("s3", "420502199001010033", "张敏", "东山大道3号"),
            entry("s4", "420502199001010044", "刘洋", "东山大道4号"),
        ],
        1,
    );
    let district = party(
        vec![
            entry("d1", "420502199001010011", "王伟", "东山大道1号"),
            entry("d2", "420502199001010022", "李娜", "夷陵大道9号"),
            entry("d3", "420502199001010033", "张明", "夷陵大道8号"),
            entry("d5", "420502199001010055", "陈静", "东山大道5号"),
        ],
        2,
    );
    (street, district)
}

#[test]
fn each_side_learns_its_own_matches_and_which_items_differ() {
    let (street, district) = street_and_district();
    let (s, d) = in_process(street, district).unwrap();
    let expected = Counts {
        here: 4,
        there: 4,
        matched: 1,
        differing: 2,
        only_here: 1,
        only_there: 1,
        not_compared: 0,
    };
    assert_eq!(s.counts, expected);
    assert_eq!(d.counts, expected);
    assert_eq!(status_of(&s, "s1"), &Status::Matched);
    assert_eq!(
        status_of(&s, "s2"),
        &Status::Differing {
            items: vec!["address".into()]
        }
    );
    assert_eq!(
        status_of(&d, "d3"),
        &Status::Differing {
            items: vec!["name".into(), "address".into()]
        }
    );
    assert_eq!(status_of(&s, "s4"), &Status::Unmatched);
    assert_eq!(status_of(&d, "d5"), &Status::Unmatched);
}

#[test]
fn the_other_sides_unmatched_records_are_known_by_reference_alone() {
    let (street, district) = street_and_district();
    let (s, d) = in_process(street, district).unwrap();
    // The street knows the district's unmatched record only by the district's reference, which
    // the district resolves to its key.
    let only_there: Vec<&TheirRecord> = s
        .theirs
        .iter()
        .filter(|t| t.status == Status::Unmatched)
        .collect();
    assert_eq!(only_there.len(), 1);
    assert_eq!(only_there[0].key, None);
    let d5 = d.own.iter().find(|r| r.key == "d5").unwrap();
    assert_eq!(only_there[0].reference, d5.reference);
    assert_eq!(d5.reference, hex::encode(reference(&[2; 32], "d5")));
    // A differing record of the other side is named by this side's own key and their reference.
    let d2 = d.own.iter().find(|r| r.key == "d2").unwrap();
    let theirs_s2 = s
        .theirs
        .iter()
        .find(|t| t.key.as_deref() == Some("s2"))
        .unwrap();
    assert_eq!(theirs_s2.reference, d2.reference);
    assert_eq!(
        theirs_s2.status,
        Status::Differing {
            items: vec!["address".into()]
        }
    );
    let mismatches = s.mismatches("cc_1", Role::Collector);
    assert_eq!(mismatches.len(), 4, "{mismatches:?}");
    assert!(mismatches.contains(&Mismatch {
        run: "cc_1".into(),
        kind: MismatchKind::OnlyAtHolder,
        key: None,
        reference: d5.reference.clone(),
    }));
    assert!(mismatches.contains(&Mismatch {
        run: "cc_1".into(),
        kind: MismatchKind::Differing {
            items: vec!["address".into()]
        },
        key: Some("s2".into()),
        reference: d2.reference.clone(),
    }));
    let at_district = d.mismatches("cc_1", Role::Holder);
    assert!(
        at_district
            .iter()
            .any(|m| m.kind == MismatchKind::OnlyAtCollector && m.key.is_none())
    );
}

#[test]
fn a_later_run_tells_which_mismatches_still_stand() {
    let (street, district) = street_and_district();
    let (first, _) = in_process(street, district).unwrap();
    let mismatches = first.mismatches("cc_1", Role::Collector);
    // The street corrects s2's address; the district registers s4's resident.
    let street = party(
        vec![
            entry("s1", "420502199001010011", "王伟", "东山大道1号"),
            entry("s2", "420502199001010022", "李娜", "夷陵大道9号"),
            entry("s3", "420502199001010033", "张敏", "东山大道3号"),
            entry("s4", "420502199001010044", "刘洋", "东山大道4号"),
        ],
        1,
    );
    let district = party(
        vec![
            entry("d1", "420502199001010011", "王伟", "东山大道1号"),
            entry("d2", "420502199001010022", "李娜", "夷陵大道9号"),
            entry("d3", "420502199001010033", "张明", "夷陵大道8号"),
            entry("d4", "420502199001010044", "刘洋", "东山大道4号"),
            entry("d5", "420502199001010055", "陈静", "东山大道5号"),
        ],
        2,
    );
    let (later, _) = in_process(street, district).unwrap();
    let standing: Vec<(Option<&str>, bool)> = mismatches
        .iter()
        .map(|m| (m.key.as_deref(), later.still_stands(m)))
        .collect();
    assert!(standing.contains(&(Some("s2"), false)));
    assert!(standing.contains(&(Some("s3"), true)));
    assert!(standing.contains(&(Some("s4"), false)));
    assert!(
        standing.contains(&(None, true)),
        "d5 is still only at the district"
    );
}

#[test]
fn elements_are_bound_to_their_run() {
    // The same records under another run id match nothing: a side cannot reuse elements
    // captured from one run in another.
    let (mut a, mut b) = street_and_district();
    let mut other = terms();
    other.run = "cc_fedcba9876543210".into();
    b.context = other.context();
    b.terms = other;
    let (offer_a, offer_b) = (a.offer().unwrap(), b.offer().unwrap());
    let a_ab = b.answer(&offer_a.elements).unwrap();
    let b_ab = a.answer(&offer_b.elements).unwrap();
    assert_eq!(a.settle_records(&a_ab, &b_ab, &offer_b.references), Ok(0));
    assert_eq!(a.outcome().counts.matched, 0);
}

#[test]
fn what_a_side_sends_is_shuffled_blinded_and_fresh() {
    let (mut a, _) = street_and_district();
    let offer = a.offer().unwrap();
    assert_eq!(offer.elements.len(), 4 * ROUND_ONE_WIDTH * ELEMENT_BYTES);
    // No element is the hash of a value as is, and another run's secret blinds the same
    // records to other elements.
    let context = terms().context();
    let plain = RistrettoPoint::from_uniform_bytes(&key_input(&context, "420502199001010011"))
        .compress()
        .to_bytes();
    assert!(
        offer
            .elements
            .chunks_exact(ELEMENT_BYTES)
            .all(|e| e != plain)
    );
    let (mut again, _) = street_and_district();
    let second = again.offer().unwrap();
    let first: HashSet<&[u8]> = offer.elements.chunks_exact(ELEMENT_BYTES).collect();
    assert!(
        second
            .elements
            .chunks_exact(ELEMENT_BYTES)
            .all(|e| !first.contains(e))
    );
}

#[test]
fn a_shuffle_is_a_permutation_and_moves_things() {
    let order = shuffled(1000).unwrap();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    assert!(
        order
            .iter()
            .enumerate()
            .filter(|(i, v)| *i as u32 == **v)
            .count()
            < 20
    );
}

#[test]
fn malformed_answers_are_refused() {
    let (mut a, b) = street_and_district();
    let offer = a.offer().unwrap();
    assert!(matches!(
        b.answer(&offer.elements[..31]),
        Err(CrossCheckError::Malformed(_))
    ));
    // 32 bytes that encode no Ristretto point (a non-canonical field element).
    assert!(matches!(
        b.answer(&[0xff; 32]),
        Err(CrossCheckError::Malformed(_))
    ));
    let answered = b.answer(&offer.elements).unwrap();
    assert!(matches!(
        a.settle_records(&answered[..64], &answered, &[0; 64]),
        Err(CrossCheckError::Malformed(_))
    ));
}

#[test]
fn records_are_prepared_in_their_items_one_form() {
    let catalog: Catalog = serde_json::from_str(
        EXAMPLES
            .iter()
            .find(|(f, _)| *f == "residents.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let terms = Terms {
        join: "id_number".into(),
        compared: vec!["name".into()],
        ..terms()
    };
    let id = catalog.item_index("id_number").unwrap();
    let name = catalog.item_index("name").unwrap();
    let record = |key: &str, id_number: &str| {
        let mut values = vec![String::new(); catalog.items.len()];
        values[id] = id_number.into();
        values[name] = "周娜".into();
        (key.to_owned(), values)
    };
    let prepared = prepare(
        &catalog,
        &terms,
        [
            record("P1", " 42050219790711125x "),
            record("P2", ""),
            record("P3", "420502198001010011"),
            record("P4", "420502198001010011"),
        ],
    )
    .unwrap();
    assert_eq!(
        prepared.entries,
        vec![entry_of("P1", "42050219790711125X", "周娜")]
    );
    assert_eq!(prepared.not_compared, vec!["P2", "P3", "P4"]);
    let missing = Terms {
        compared: vec!["no_such_item".into()],
        ..terms
    };
    assert!(matches!(
        prepare(&catalog, &missing, []),
        Err(CrossCheckError::NoSuchItem { item, .. }) if item == "no_such_item"
    ));
}

fn entry_of(key: &str, join: &str, name: &str) -> Entry {
    Entry {
        key: key.into(),
        join: join.into(),
        values: vec![name.into()],
    }
}

#[test]
fn terms_compare_some_item_once_and_not_the_join_item() {
    let bad = |compared: &[&str]| Terms {
        compared: compared.iter().map(|s| s.to_string()).collect(),
        ..terms()
    };
    assert!(bad(&[]).check().is_err());
    assert!(bad(&["id"]).check().is_err());
    assert!(bad(&["name", "name"]).check().is_err());
    assert!(bad(&["name"]).check().is_ok());
}
