use tierlink_core::catalog::parse_catalogs;

use super::*;
use crate::SledStore;

fn open(dir: &std::path::Path) -> Registry {
    Registry::open(Arc::new(SledStore::open(dir).unwrap())).unwrap()
}

fn buildings() -> Catalog {
    parse_catalogs(
        include_str!("../../../../schema/examples/buildings.json"),
        "buildings.json",
    )
    .unwrap()
    .remove(0)
}

fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

/// The buildings' required items, in the order the tests write them.
fn required() -> Vec<String> {
    cols(&[
        "building_code",
        "community_code",
        "building_name",
        "address",
        "floors",
    ])
}

#[test]
fn a_batch_with_one_bad_record_stores_none() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let code = buildings().code;
    registry.put_catalog(buildings()).unwrap();
    let columns = required();
    let good = |k: &str| cols(&[k, "420502001001", "1号楼", "西陵一路 1 号", "6"]);
    let mut bad = good("420502001001-B0003");
    bad[4] = "six".into();
    let err = registry
        .put_records(
            &code,
            &columns,
            vec![good("420502001001-B0001"), good("420502001001-B0002"), bad],
        )
        .unwrap_err();
    let RegistryError::Records { errors, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (errors.len(), errors[0].record, errors[0].item.as_str()),
        (1, 3, "floors")
    );
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    assert_eq!(registry.store().record_count(&code).unwrap(), 0);
    assert_eq!(registry.store().scan(&code, "", None).count(), 0);

    let out = registry
        .put_records(
            &code,
            &columns,
            vec![good("420502001001-B0001"), good("420502001001-B0002")],
        )
        .unwrap();
    assert_eq!(out.created, 2);
}

#[test]
fn unknown_catalogs_and_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    registry.put_catalog(buildings()).unwrap();
    let err = registry
        .put_records("103001001/000009", &cols(&["x"]), vec![])
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownCatalog(_)));
    let err = registry
        .put_records(&buildings().code, &cols(&["storeys"]), vec![])
        .unwrap_err();
    assert!(
        err.to_string().contains("\"storeys\" is not an item"),
        "{err}"
    );
}

#[test]
fn an_invalid_catalog_is_not_stored_and_catalogs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let registry = open(dir.path());
        let mut bad = buildings();
        bad.items.clear();
        assert!(matches!(
            registry.put_catalog(bad),
            Err(RegistryError::Catalog(_))
        ));
        assert!(registry.entries().is_empty());
        registry.put_catalog(buildings()).unwrap();
    }
    let registry = open(dir.path());
    assert_eq!(
        registry.entry(&buildings().code).unwrap().catalog,
        buildings()
    );
}

#[test]
fn a_catalog_with_records_may_only_append_items() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let catalog = buildings();
    registry.put_catalog(catalog.clone()).unwrap();
    let columns = required();
    registry
        .put_records(
            &catalog.code,
            &columns,
            vec![cols(&[
                "420502001001-B0001",
                "420502001001",
                "1号楼",
                "西陵一路",
                "6",
            ])],
        )
        .unwrap();
    let mut reordered = catalog.clone();
    reordered.items.swap(3, 4);
    assert!(matches!(
        registry.put_catalog(reordered),
        Err(RegistryError::Catalog(_))
    ));
    assert_eq!(registry.entry(&catalog.code).unwrap().catalog, catalog);
}
