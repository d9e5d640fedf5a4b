//! Generated but plausible records for the example catalogs (residents and buildings of one
//! street, the household register and insured persons of the same people), small catalogs for loading the directory, and a three-tier policy, for the demo,
//! tests and benchmarks.
//! Deterministic: the same seed gives the same data.

use tierlink_core::catalog::gb11643_check_digit;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, PolicyCommand, Role, RowScope,
};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "平",
];
const ROADS: &[&str] = &[
    "西陵一路",
    "西陵二路",
    "夷陵大道",
    "东山大道",
    "解放路",
    "云集路",
    "沿江大道",
    "西坝路",
    "珍珠路",
];
const OCCUPATIONS: &[&str] = &[
    "教师",
    "护士",
    "司机",
    "个体经营",
    "工程师",
    "退休",
    "学生",
    "厨师",
    "快递员",
    "公务员",
];

/// A small deterministic generator (SplitMix64: Steele, Lea & Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014).
pub(crate) struct Mix(pub(crate) u64);

impl Mix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number below `n` (which must not be 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Item codes of [`residents`] rows, in row order (a subset of the residents catalog's items).
pub const RESIDENT_COLUMNS: &[&str] = &[
    "person_id",
    "id_number",
    "name",
    "sex",
    "birth_date",
    "ethnicity",
    "nationality",
    "phone",
    "household_address",
    "household_type",
    "household_number",
    "relation_to_head",
    "current_address",
    "community_code",
    "grid_code",
    "building_code",
    "floating",
    "inflow_date",
    "origin",
    "education",
    "marital_status",
    "political_status",
    "employer",
    "occupation",
    "religion",
    "health_status",
    "special_population",
    "registered_on",
    "collector",
];

/// Item codes of [`buildings`] rows, in row order.
pub const BUILDING_COLUMNS: &[&str] = &[
    "building_code",
    "community_code",
    "compound",
    "building_name",
    "address",
    "building_head",
    "building_head_phone",
    "security_lead",
    "floors",
    "households",
    "residents",
    "floating_residents",
    "grid_code",
    "longitude",
    "latitude",
];

/// A small valid catalog with resource code `103002001/NNNNNN` (NNNNNN = `n` + 1): the grid-cell
/// example with its key item only, without its parts, about 700 bytes as JSON.
pub fn small_catalog(n: usize) -> tierlink_core::catalog::Catalog {
    let (file, text) = tierlink_core::catalog::EXAMPLES
        .iter()
        .find(|(f, _)| *f == "grid-cells.json")
        .expect("the grid-cell example is built in");
    let mut c = tierlink_core::catalog::parse_catalogs(text, file)
        .expect("the built-in examples are valid")
        .remove(0);
    c.code = format!("103002001/{:06}", n + 1);
    c.items.truncate(1);
    // Without the items its parts hold; as small as before the catalogs declared parts.
    c.items[0].embeds.clear();
    c.items[0].guessable = false;
    c
}

/// `count` residents of street `street` (a 9-digit code), for the residents catalog.
pub fn residents(street: &str, count: usize, seed: u64) -> Vec<Vec<String>> {
    let mut r = Mix(seed);
    (0..count)
        .map(|n| {
            let (year, month, day) = (1940 + r.below(66), 1 + r.below(12), 1 + r.below(28));
            let sex = 1 + r.below(2);
            let first17 = format!(
                "{}{year:04}{month:02}{day:02}{:02}{}",
                &street[..6],
                r.below(100),
                sex % 2 + 2 * r.below(5)
            );
            let check = gb11643_check_digit(&first17).unwrap_or('0');
            let community = format!("{street}{:03}", 1 + r.below(8));
            let grid = format!("{community}{:02}", 1 + r.below(20));
            let building = format!("{community}-B{:04}", r.below(1210));
            let floating = r.below(4) == 0;
            let address = format!("{}{}号", r.pick(ROADS), 1 + r.below(300));
            let special = if r.below(200) == 0 {
                format!("0{}", 1 + r.below(4))
            } else {
                String::new()
            };
            vec![
                format!("P{street}{n:07}"),
                format!("{first17}{check}"),
                format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN)),
                sex.to_string(),
                format!("{year:04}-{month:02}-{day:02}"),
                if r.below(10) == 0 {
                    "03".into()
                } else {
                    "01".into()
                },
                "CHN".into(),
                format!("13{:09}", r.next() % 1_000_000_000),
                if floating {
                    "湖北省恩施州".into()
                } else {
                    address.clone()
                },
                "3".into(),
                format!("H{:08}", r.below(20_000)),
                format!("0{}", 1 + r.below(5)),
                address,
                community,
                grid,
                building,
                floating.to_string(),
                if floating {
                    format!("20{:02}-0{}-15", 10 + r.below(16), 1 + r.below(9))
                } else {
                    String::new()
                },
                if floating {
                    "湖北省恩施州".into()
                } else {
                    String::new()
                },
                ["20", "30", "60", "70"][r.below(4)].into(),
                ["10", "20", "20", "30"][r.below(4)].into(),
                ["01", "03", "13", "13"][r.below(4)].into(),
                "宜昌市某单位".into(),
                r.pick(OCCUPATIONS).into(),
                if r.below(20) == 0 {
                    "佛教".into()
                } else {
                    String::new()
                },
                if r.below(30) == 0 {
                    "慢性病".into()
                } else {
                    String::new()
                },
                special,
                format!("2025-{:02}-{:02}", 1 + r.below(12), 1 + r.below(28)),
                format!("网格员{:02}", 1 + r.below(40)),
            ]
        })
        .collect()
}

/// `count` buildings of street `street` (at most 10,000: building codes are the community's
/// code, `-B` and a four-digit number), for the buildings catalog.
pub fn buildings(street: &str, count: usize, seed: u64) -> Vec<Vec<String>> {
    let mut r = Mix(seed);
    (0..count)
        .map(|n| {
            let community = format!("{street}{:03}", 1 + n % 8);
            let households = 6 + r.below(120);
            let residents = households * 3 - r.below(households);
            vec![
                format!("{community}-B{n:04}"),
                community.clone(),
                format!("{}小区", r.pick(ROADS)),
                format!("{}栋", 1 + n % 40),
                format!("{}{}号", r.pick(ROADS), 1 + r.below(300)),
                format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN)),
                format!("139{:08}", r.next() % 100_000_000),
                format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN)),
                (2 + r.below(30)).to_string(),
                households.to_string(),
                residents.to_string(),
                r.below(residents / 4 + 1).to_string(),
                format!("{community}{:02}", 1 + r.below(20)),
                format!("111.{:06}", 270_000 + r.below(40_000)),
                format!("30.{:06}", 690_000 + r.below(30_000)),
            ]
        })
        .collect()
}

/// Item codes of [`household_register`] rows, in row order (the household register example's
/// items).
pub const HOUSEHOLD_COLUMNS: &[&str] = &[
    "id_number",
    "name",
    "sex",
    "birth_date",
    "ethnicity",
    "household_number",
    "relation_to_head",
    "registered_address",
    "household_type",
    "community_code",
    "police_station",
    "registered_on",
    "status",
];

/// One deliberate difference between a street's residents and the household register, by the
/// citizen ID number it concerns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mismatch {
    /// The register's address differs from the resident's household registration address.
    Address(String),
    /// The register's name differs from the resident's.
    Name(String),
    /// A collected resident the register does not hold.
    NotRegistered(String),
    /// A registered person the street has not collected.
    NotCollected(String),
}

/// A household register generated from a street's residents, and the differences put in it.
#[derive(Clone, Debug)]
pub struct Register {
    /// Rows in [`HOUSEHOLD_COLUMNS`] order.
    pub rows: Vec<Vec<String>>,
    /// The differences, in the order of the residents they concern.
    pub mismatches: Vec<Mismatch>,
}

/// The value of item `code` in a [`residents`] row.
fn resident_value<'a>(row: &'a [String], code: &str) -> &'a str {
    let at = RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == code)
        .expect("a resident item");
    &row[at]
}

/// The district's household register (户籍) of the people in `residents` ([`residents`] rows):
/// the same people, identity and household as collected, registered address the resident's
/// household registration address, but for `mismatches` deliberate differences, one resident
/// each, spread over the residents and taking turns: an address differs, a name differs, a
/// resident is left out, and a person nobody collected is added. At most one mismatch per
/// resident: `mismatches` is capped at the number of residents. A resident whose ID number an
/// earlier one already has is registered once.
pub fn household_register(residents: &[Vec<String>], mismatches: usize, seed: u64) -> Register {
    let mut r = Mix(seed);
    // One row per ID number: [`residents`] can, rarely, give two people the same one.
    let mut seen = std::collections::HashSet::new();
    let residents: Vec<&Vec<String>> = residents
        .iter()
        .filter(|p| seen.insert(resident_value(p, "id_number")))
        .collect();
    let count = residents.len();
    let mismatches = mismatches.min(count);
    // The residents that differ, evenly spread: resident `k * count / mismatches` has mismatch k.
    let mut planned = (0..mismatches)
        .map(|k| (k * count / mismatches, k % 4))
        .peekable();
    let mut register = Register {
        rows: Vec::with_capacity(count + mismatches / 4 + 1),
        mismatches: Vec::with_capacity(mismatches),
    };
    for (n, resident) in residents.iter().enumerate() {
        let value = |code| resident_value(resident, code).to_string();
        let id = value("id_number");
        let mut row = vec![
            id.clone(),
            value("name"),
            value("sex"),
            value("birth_date"),
            value("ethnicity"),
            value("household_number"),
            value("relation_to_head"),
            value("household_address"),
            value("household_type"),
            value("community_code"),
            format!("西陵派出所{}所", 1 + r.below(6)),
            value("registered_on"),
            "1".into(),
        ];
        let (name, address) = (1, 7); // positions in HOUSEHOLD_COLUMNS
        match planned.next_if(|(at, _)| *at == n).map(|(_, kind)| kind) {
            Some(0) => {
                // Another road than the resident's, so the address surely differs.
                let road = ROADS
                    .iter()
                    .position(|x| row[address].starts_with(x))
                    .map_or(0, |i| i + 1);
                row[address] = format!("{}{}号", ROADS[road % ROADS.len()], 1 + r.below(300));
                register.mismatches.push(Mismatch::Address(id));
            }
            Some(1) => {
                row[name] = format!("{}{}", row[name], r.pick(GIVEN));
                register.mismatches.push(Mismatch::Name(id));
            }
            Some(2) => {
                register.mismatches.push(Mismatch::NotRegistered(id));
                continue;
            }
            Some(_) => {
                let unknown = unknown_person(resident, &mut r);
                register
                    .mismatches
                    .push(Mismatch::NotCollected(unknown[0].clone()));
                register.rows.push(unknown);
            }
            None => {}
        }
        register.rows.push(row);
    }
    register
}

/// A registered person of `neighbour`'s household whom the street has not collected: born in the
/// 1930s, before every generated resident, so no ID number is shared.
fn unknown_person(neighbour: &[String], r: &mut Mix) -> Vec<String> {
    let (year, month, day) = (1930 + r.below(10), 1 + r.below(12), 1 + r.below(28));
    let sex = 1 + r.below(2);
    let region = &resident_value(neighbour, "id_number")[..6];
    let first17 = format!(
        "{region}{year:04}{month:02}{day:02}{:02}{}",
        r.below(100),
        sex % 2 + 2 * r.below(5)
    );
    let check = gb11643_check_digit(&first17).unwrap_or('0');
    let value = |code| resident_value(neighbour, code).to_string();
    vec![
        format!("{first17}{check}"),
        format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN)),
        sex.to_string(),
        format!("{year:04}-{month:02}-{day:02}"),
        "01".into(),
        value("household_number"),
        "05".into(),
        value("household_address"),
        value("household_type"),
        value("community_code"),
        format!("西陵派出所{}所", 1 + r.below(6)),
        format!(
            "19{:02}-{:02}-{:02}",
            50 + r.below(40),
            1 + r.below(12),
            1 + r.below(28)
        ),
        "1".into(),
    ]
}

/// Item codes of [`insured_persons`] rows, in row order (the insured persons example's items).
pub const INSURED_COLUMNS: &[&str] = &[
    "insured_id",
    "id_number",
    "name",
    "sex",
    "birth_date",
    "phone",
    "pension_status",
    "medical_scheme",
    "employer",
    "employer_code",
    "insured_since",
    "community_code",
];

/// The city's insured persons (大社保) among `residents` ([`residents`] rows): about four in five
/// of them, with their identity as collected, a pension drawn from 60, and a person number
/// `SB`, the city's code and a sequence.
pub fn insured_persons(residents: &[Vec<String>], seed: u64) -> Vec<Vec<String>> {
    let mut r = Mix(seed);
    let mut n = 0;
    residents
        .iter()
        .filter_map(|resident| {
            if r.below(5) == 0 {
                return None;
            }
            n += 1;
            let value = |code| resident_value(resident, code).to_string();
            let id = value("id_number");
            let born: usize = id[6..10].parse().expect("a generated ID number");
            let retired = born <= 1966;
            let employed = !retired && r.below(4) != 0;
            Some(vec![
                format!("SB{}00{n:08}", &id[..4]),
                id,
                value("name"),
                value("sex"),
                value("birth_date"),
                value("phone"),
                if retired {
                    "3"
                } else if employed {
                    "1"
                } else {
                    "2"
                }
                .into(),
                if employed { "310" } else { "390" }.into(),
                if employed { "宜昌市某单位" } else { "" }.into(),
                if employed {
                    format!("91420500MA{:08}", r.below(100_000_000))
                } else {
                    String::new()
                },
                format!("{}-{:02}-01", (born + 20).max(1992), 1 + r.below(12)),
                value("community_code"),
            ])
        })
        .collect()
}

/// Purpose of the city analysts' grant in [`three_tier_policies`].
pub const SECURITY_CHECK: &str = "population security check";
/// Purpose of the district's grant, and its delegation, in [`three_tier_policies`].
pub const ALLOWANCE_REVIEW: &str = "subsistence allowance review";

/// The residents catalog's code in the examples.
pub const RESIDENTS_CATALOG: &str = "101001001/000001";

/// A street's resident register opened to three posts, as the demo shows it, in the order the
/// commands are issued (each with its issuing node): a city public-security analyst sees the ID
/// number, name, and the birth date and sex the ID number holds anyway, in clear, and the phone
/// hashed; a district civil-affairs officer sees the ID number and phone masked, the birth
/// date's year and month and the district's rows: the mask keeps the ID number's region and
/// check digit only, since the day and check digit would leave about 3 candidates (with the
/// sequence digits hidden too, about 1,400, the sex giving digit 17's parity); the street's grid worker, by the district's
/// delegation, sees less still (the ID number's region, the birth year, names and addresses
/// hashed) and only one community's rows, with their grid cells. None leaks
/// (`Decision::check_reveal`). The catalog is conditional, so the city and district ask and
/// the street approves.
pub fn three_tier_policies(
    city: &NodeCode,
    district: &NodeCode,
    street: &NodeCode,
    expires: &str,
) -> Vec<(NodeCode, PolicyCommand)> {
    let role = |unit: &NodeCode, name: &str, department: &str, post: &str| {
        PolicyCommand::DefineRole(Role {
            unit: unit.clone(),
            name: name.into(),
            department: department.into(),
            post: post.into(),
        })
    };
    let actions = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(item, action)| (item.to_string(), action.parse().expect("valid action")))
            .collect()
    };
    let request = |id: &str, grantee: &str, purpose: &str| {
        PolicyCommand::RequestAccess(AccessRequest {
            id: id.into(),
            producer: street.clone(),
            catalog: RESIDENTS_CATALOG.into(),
            grantee: Grantee::Role(grantee.into()),
            purpose: purpose.into(),
            items: Vec::new(),
            requester: None,
            status: AccessStatus::Pending,
        })
    };
    let grant = |id: &str, grantee: &str, purpose: &str| {
        Grant::new(
            id,
            street.clone(),
            RESIDENTS_CATALOG,
            Grantee::Role(grantee.into()),
            purpose,
            expires,
        )
    };
    let (analyst, officer, worker) = (
        format!("{city}/ps-analyst"),
        format!("{district}/civil-affairs"),
        format!("{street}/grid-worker"),
    );
    let (security, allowance) = (SECURITY_CHECK, ALLOWANCE_REVIEW);
    vec![
        (
            city.clone(),
            role(city, "ps-analyst", "Public Security Bureau", "analyst"),
        ),
        (
            district.clone(),
            role(district, "civil-affairs", "Civil Affairs Bureau", "officer"),
        ),
        (
            street.clone(),
            role(street, "grid-worker", "Grid Office", "grid worker"),
        ),
        (city.clone(), request("city-security", &analyst, security)),
        (
            street.clone(),
            PolicyCommand::ApproveAccess(Grant {
                items: actions(&[
                    ("id_number", "clear"),
                    ("birth_date", "clear"),
                    ("sex", "clear"),
                    ("name", "clear"),
                    ("phone", "hash"),
                    ("current_address", "clear"),
                    ("residence_permit", "clear"),
                ]),
                others: Some(Action::Withhold),
                access_request: Some("city-security".into()),
                ..grant("city-security", &analyst, security)
            }),
        ),
        (
            district.clone(),
            request("district-allowance", &officer, allowance),
        ),
        (
            street.clone(),
            PolicyCommand::ApproveAccess(Grant {
                items: actions(&[
                    ("id_number", "mask:6:1"),
                    ("birth_date", "year-month"),
                    ("phone", "mask:3:4"),
                ]),
                others: Some(Action::Clear),
                rows: Some(RowScope {
                    item: "community_code".into(),
                    within: district.to_string(),
                }),
                access_request: Some("district-allowance".into()),
                ..grant("district-allowance", &officer, allowance)
            }),
        ),
        (
            district.clone(),
            PolicyCommand::Grant(Grant {
                items: actions(&[
                    ("id_number", "mask:6:0"),
                    ("sex", "clear"),
                    ("birth_date", "year"),
                    ("name", "hash"),
                    ("current_address", "hash"),
                    ("occupation", "hash"),
                    ("community_code", "clear"),
                    ("grid_code", "clear"),
                ]),
                others: Some(Action::Withhold),
                rows: Some(RowScope {
                    item: "community_code".into(),
                    within: format!("{street}001"),
                }),
                delegated_from: Some("district-allowance".into()),
                ..grant("street-allowance", &worker, allowance)
            }),
        ),
    ]
}

#[cfg(test)]
mod tests;
