//! Resource catalogs: the national catalog model ([`Catalog`], [`InformationItem`]), the rules a
//! catalog entry must meet, and the [`RecordSchema`] that checks records against their catalog.
//!
//! The JSON form is defined by `schema/catalog.schema.json`; these types read and write it.

mod model;
mod records;
mod rules;

pub use model::{
    Catalog, CodeEntry, DataType, EmbeddedPart, InformationItem, OpenType, PartAs, Provider,
    ResourceFormat, ResourceKind, SensitivityGrade, Sharing, SharingMethod, SharingType,
    UpdateCycle, ValueCheck,
};
pub use records::{
    IdNumberError, KEY_SEPARATOR, RecordError, RecordSchema, Row, ValueForm, gb11643_check,
    gb11643_check_digit, gb11643_valid,
};
pub use rules::{CatalogError, bounds, is_resource_code, parse_catalogs};

/// The example catalogs shipped in `schema/examples/`, as `(file name, JSON text)`.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "residents.json",
        include_str!("../../../schema/examples/residents.json"),
    ),
    (
        "buildings.json",
        include_str!("../../../schema/examples/buildings.json"),
    ),
    (
        "grid-cells.json",
        include_str!("../../../schema/examples/grid-cells.json"),
    ),
    (
        "city-components.json",
        include_str!("../../../schema/examples/city-components.json"),
    ),
    (
        "cases.json",
        include_str!("../../../schema/examples/cases.json"),
    ),
    (
        "job-seekers.json",
        include_str!("../../../schema/examples/job-seekers.json"),
    ),
    (
        "vacancies.json",
        include_str!("../../../schema/examples/vacancies.json"),
    ),
    (
        "household-register.json",
        include_str!("../../../schema/examples/household-register.json"),
    ),
    (
        "social-insured.json",
        include_str!("../../../schema/examples/social-insured.json"),
    ),
    (
        "social-contributions.json",
        include_str!("../../../schema/examples/social-contributions.json"),
    ),
    (
        "social-benefits.json",
        include_str!("../../../schema/examples/social-benefits.json"),
    ),
];
