//! The catalog entry and its information items, as serde types matching
//! `schema/catalog.schema.json`.

use serde::{Deserialize, Serialize};

/// A resource catalog entry (政务信息资源目录): one data set a unit publishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Resource code `PREFIX/NNNNNN`: classification (类 1 digit, 项 2, optional 目 3 and 细目 3)
    /// then a 6-digit sequence, e.g. `101001001/000001`.
    pub code: String,
    /// Resource name.
    pub name: String,
    /// The department that provides the resource.
    pub provider: Provider,
    /// What the resource holds.
    pub summary: String,
    /// Base, theme or department resource; must match the code's first digit (1, 2, 3).
    pub kind: ResourceKind,
    /// Storage format of the resource.
    pub format: ResourceFormat,
    /// How often the resource is updated.
    pub update_cycle: UpdateCycle,
    /// Sharing attributes of the resource as a whole.
    pub sharing: Sharing,
    /// Whether the resource is opened to the public.
    pub open_type: OpenType,
    /// Publication date, `YYYY-MM-DD`.
    pub published: String,
    /// Codes of related resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    /// The information items (信息项): the fields of every record.
    pub items: Vec<InformationItem>,
}

/// The providing department (提供方).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Department name, e.g. "Xiling District Civil Affairs Bureau".
    pub name: String,
    /// Department code, e.g. its unified social credit code.
    pub code: String,
}

/// Resource kind (资源分类).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// 基础信息资源 (code class 1).
    Base,
    /// 主题信息资源 (code class 2).
    Theme,
    /// 部门信息资源 (code class 3).
    Department,
}

/// Resource format (信息资源格式).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceFormat {
    /// Database tables.
    Database,
    /// Spreadsheets.
    Spreadsheet,
    /// Documents.
    Document,
    /// Images and maps.
    Image,
    /// Streaming media.
    Stream,
    /// Anything else.
    Other,
}

/// Update cycle (更新周期).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateCycle {
    /// 不定期.
    Irregular,
    /// 实时.
    RealTime,
    /// 每日.
    Daily,
    /// 每周.
    Weekly,
    /// 每月.
    Monthly,
    /// 每季度.
    Quarterly,
    /// 每半年.
    HalfYearly,
    /// 每年.
    Yearly,
    /// 其他.
    Other,
}

/// Sharing type (共享类型), of a resource or of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingType {
    /// 无条件共享.
    Unconditional,
    /// 有条件共享: the conditions say who may have it and why.
    Conditional,
    /// 不予共享: never leaves the node.
    NotShared,
}

impl SharingType {
    /// The name used in files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SharingType::Unconditional => "unconditional",
            SharingType::Conditional => "conditional",
            SharingType::NotShared => "not_shared",
        }
    }
}

/// Sharing attributes of a resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    /// Sharing type.
    #[serde(rename = "type")]
    pub kind: SharingType,
    /// Conditions of sharing; required when the type is conditional, or the reason when not shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    /// How the resource is shared.
    pub method: SharingMethod,
}

/// Sharing method (共享方式).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingMethod {
    /// Service interface (接口).
    Interface,
    /// File download.
    File,
    /// Table exchange between databases.
    Database,
    /// Anything else.
    Other,
}

/// Open type (开放类型) towards the public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenType {
    /// 无条件开放.
    Unconditional,
    /// 有条件开放.
    Conditional,
    /// 不予开放.
    NotOpen,
}

/// An information item (信息项): one field of the resource's records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InformationItem {
    /// Machine name of the item, e.g. `id_number`; the key in record files.
    pub code: String,
    /// Human name, e.g. "公民身份号码 (citizen ID number)"; also accepted as a CSV header.
    pub name: String,
    /// Data type of its values.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Maximum length (数据长度), in the unit of its type: characters (Unicode scalar values, not
    /// bytes) for strings, digits for numbers, bytes of the decoded value for binary, characters
    /// of the written form for dates, times, timestamps and booleans. Left out, the type's
    /// default ([`DataType::default_length`]). Bounds the record's size: see
    /// [`Catalog::max_record_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Part of the record's primary key.
    #[serde(default)]
    pub primary_key: bool,
    /// Every record must have a value.
    #[serde(default)]
    pub required: bool,
    /// Sharing type of this item.
    pub sharing: SharingType,
    /// Sensitivity grade.
    pub grade: SensitivityGrade,
    /// Sensitive personal information (敏感个人信息).
    #[serde(default)]
    pub sensitive_personal: bool,
    /// A regular expression every value must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The only allowed values, with their meanings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_table: Option<Vec<CodeEntry>>,
    /// A check beyond the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ValueCheck>,
    /// The parts of a fixed-width code and what each carries (e.g. a citizen ID number's birth
    /// date). An item with parts declares its `length`, and every value is exactly that long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<EmbeddedPart>,
    /// Its actual values are few though its type does not say so (division codes, grid codes):
    /// a keyed hash of it can be undone by hashing every candidate, so it is never sent hashed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guessable: bool,
}

/// One part of a fixed-width code: characters `from` to `to` (1-based, inclusive) and, when
/// they carry another item of the same catalog, which one and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedPart {
    /// What the part is, e.g. "birth date".
    pub part: String,
    /// First character, from 1.
    pub from: u32,
    /// Last character, inclusive.
    pub to: u32,
    /// The code of the item whose value the part carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<String>,
    /// How the part carries it.
    #[serde(rename = "as", default, skip_serializing_if = "PartAs::is_same")]
    pub carries: PartAs,
}

impl EmbeddedPart {
    /// Characters in the part.
    pub fn chars(&self) -> u32 {
        self.to + 1 - self.from
    }

    /// 0-based positions of the part's characters.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.from as usize - 1..self.to as usize
    }
}

/// How an embedded part carries the item it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartAs {
    /// The part's characters are the held item's value.
    #[default]
    Same,
    /// `YYYYMMDD`: the digits of a `date` item written `YYYY-MM-DD`.
    Date,
    /// One character whose parity (odd or even) gives the held item, e.g. GB 11643's 17th
    /// digit gives the sex.
    Parity,
    /// A check character computed from the item's other characters; holds nothing.
    Check,
}

impl PartAs {
    fn is_same(&self) -> bool {
        *self == PartAs::Same
    }

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            PartAs::Same => "same",
            PartAs::Date => "date",
            PartAs::Parity => "parity",
            PartAs::Check => "check",
        }
    }
}

/// Data type of an information item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Decimal number, e.g. `-12.5`.
    Number,
    /// Text.
    String,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD HH:MM:SS` (no offset) or RFC 3339 with its offset, each in one form
    /// ([`crate::catalog::ValueForm::Datetime`]).
    Datetime,
    /// Seconds since the Unix epoch.
    Timestamp,
    /// `true` or `false`.
    Boolean,
    /// Base64 text.
    Binary,
}

/// Sensitivity grade (数据分级).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitivityGrade {
    /// 一般数据.
    General,
    /// 重要数据.
    Important,
    /// 核心数据.
    Core,
}

/// One allowed value of a code table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    /// The value stored.
    pub code: String,
    /// What it means.
    pub label: String,
}

/// A check a value must pass beyond its pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueCheck {
    /// Citizen ID number with the GB 11643 check digit.
    Gb11643,
}

impl DataType {
    /// The length of an item of this type that declares none: 4,000 characters of text, 38
    /// digits, 1 MiB of binary, and the longest written form of the fixed-format types
    /// (`YYYY-MM-DD`; RFC 3339 with nanoseconds and an offset; a signed 64-bit number;
    /// `false`).
    pub fn default_length(self) -> u32 {
        match self {
            DataType::String => 4_000,
            DataType::Number => 38,
            DataType::Date => 10,
            DataType::Datetime => 35,
            DataType::Timestamp => 20,
            DataType::Boolean => 5,
            DataType::Binary => 1 << 20,
        }
    }

    /// Most bytes a value of this type and `length` takes as stored: UTF-8 takes up to 4 bytes a
    /// character; a number adds a sign and a decimal point to its digits; binary is stored as
    /// padded base64; the other types are written in ASCII.
    pub fn max_bytes(self, length: u32) -> u64 {
        let length = u64::from(length);
        match self {
            DataType::String => 4 * length,
            DataType::Number => length + 2,
            DataType::Binary => length.div_ceil(3) * 4,
            DataType::Date | DataType::Datetime | DataType::Timestamp | DataType::Boolean => length,
        }
    }
}

impl InformationItem {
    /// The item's length: as declared, else its type's default.
    pub fn max_length(&self) -> u32 {
        self.length
            .unwrap_or_else(|| self.data_type.default_length())
    }

    /// Most bytes one value of this item takes as stored.
    pub fn max_value_bytes(&self) -> u64 {
        self.data_type.max_bytes(self.max_length())
    }

    /// Most bytes one value of this item takes as sent under any action: as stored, hashed
    /// ([`crate::policy::HASH_CHARS`]), or, for a number, as its band `LO-HI`: a band is at most
    /// 10^length wide (the grant rules see to it) and only numbers of up to 38 digits are
    /// banded, so each bound has at most 39 digits and a sign. Masks and the other
    /// generalisations never lengthen a value.
    pub fn max_sent_bytes(&self) -> u64 {
        let band = match self.data_type {
            DataType::Number => 2 * (u64::from(self.max_length().min(38)) + 2) + 1,
            _ => 0,
        };
        self.max_value_bytes()
            .max(crate::policy::HASH_CHARS as u64)
            .max(band)
    }

    /// Whether values are exactly [`Self::max_length`] long: the item has parts, or is carried
    /// whole by another item's part (`as: same`), so a reader can tell its characters apart.
    pub fn fixed_width(&self, catalog: &Catalog) -> bool {
        !self.embeds.is_empty()
            || catalog.items.iter().any(|i| {
                i.embeds.iter().any(|p| {
                    p.carries == PartAs::Same && p.holds.as_deref() == Some(self.code.as_str())
                })
            })
    }
}

/// Bytes a length-delimited protobuf field of `len` bytes takes: a one-byte tag (fields 1 to
/// 15), the length as a varint, the bytes.
fn field_bytes(len: u64) -> u64 {
    1 + prost::encoding::encoded_len_varint(len) as u64 + len
}

impl Catalog {
    /// The catalog's maximum record size: the most bytes any record it admits takes encoded as a
    /// `tierlink.v1.Record`, as stored or as sent under any decision. Every item at its
    /// [`InformationItem::max_value_bytes`] (a hashed value takes
    /// [`crate::policy::HASH_CHARS`] bytes, which can be more than a short item's), the key
    /// items' values joined by U+001F (or hashed), a version and a time of at most ten varint
    /// bytes each. Records are checked item by item against their lengths, so none is larger;
    /// no action makes a value longer than [`InformationItem::max_sent_bytes`].
    pub fn max_record_bytes(&self) -> u64 {
        let hashed = crate::policy::HASH_CHARS as u64;
        let key_items = self.items.iter().filter(|i| i.primary_key);
        let joined: u64 = key_items
            .clone()
            .map(InformationItem::max_value_bytes)
            .sum::<u64>()
            + (key_items.count() as u64).saturating_sub(1);
        let values: u64 = self
            .items
            .iter()
            .map(|i| field_bytes(i.max_sent_bytes()))
            .sum();
        // Version and time: a tag and up to 10 varint bytes each; a deletion's flag: 2 bytes.
        field_bytes(joined.max(hashed)) + 2 * (1 + 10) + 2 + values
    }

    /// Index of the item with this code.
    pub fn item_index(&self, code: &str) -> Option<usize> {
        self.items.iter().position(|i| i.code == code)
    }

    /// The catalog as another node may see it: items that are not shared are left out.
    pub fn shared_view(&self) -> Catalog {
        let mut view = self.clone();
        view.items.retain(|i| i.sharing != SharingType::NotShared);
        view
    }
}
