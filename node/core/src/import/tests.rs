use super::*;
use crate::catalog::{EXAMPLES, parse_catalogs};

macro_rules! case {
    ($name:literal) => {
        include_bytes!(concat!("../../../cli/tests/cases/", $name)).as_slice()
    };
}

const HEADER: &str = "seeker_id,id_number,name,sex,birth_date,phone,education,desired_occupation,desired_wage,unemployed_since,registered_on,street_code";

fn schema() -> RecordSchema {
    let (_, json) = EXAMPLES
        .iter()
        .find(|(name, _)| *name == "job-seekers.json")
        .unwrap();
    RecordSchema::new(&parse_catalogs(json, "example").unwrap()[0]).unwrap()
}

fn read(bytes: &[u8]) -> Imported {
    import(bytes, &Options::default(), None, &schema()).unwrap()
}

fn with_mapping(bytes: &[u8], mapping: &str) -> Result<Imported, ImportError> {
    let mapping = Mapping::parse(mapping)?;
    import(bytes, &Options::default(), Some(&mapping), &schema())
}

fn reject_lines(imported: &Imported) -> Vec<String> {
    imported.rejects.iter().flat_map(Reject::lines).collect()
}

fn row_lines(imported: &Imported) -> Vec<usize> {
    imported.rows.iter().map(|r| r.line).collect()
}

/// A valid ID number born 1970-01-01 with sequence `seq` (its last digit odd for a man).
fn id(seq: u32) -> String {
    let first17 = format!("42050219700101{seq:03}");
    format!(
        "{first17}{}",
        crate::catalog::gb11643_check_digit(&first17).unwrap()
    )
}

/// A record of job seeker `n` (a man) with `sex`, as a CSV line without its end.
fn seeker(n: u32, sex: &str) -> String {
    format!(
        "S{n},{},张三,{sex},,,,保安,,,2026-11-01,420502002",
        id(n * 10 + 1)
    )
}

fn value<'a>(imported: &'a Imported, row: usize, item: &str) -> &'a str {
    let n = imported.items.iter().position(|i| i == item).unwrap();
    &imported.rows[row].row.values[n]
}

#[test]
fn handed_crlf_cases_name_the_line_where_the_bad_record_starts() {
    let sex3 = r#"sex: "3" is not in the item's code table"#;
    let plain = read(case!("crlf-plain-valueerr.csv"));
    assert_eq!(row_lines(&plain), [2, 3]);
    assert_eq!(plain.rejects.len(), 1);
    assert!(
        reject_lines(&plain)[0].starts_with(&format!("line 4: {sex3}")),
        "{plain:?}"
    );

    let blank = read(case!("lf-blank-line-valueerr.csv"));
    assert_eq!(row_lines(&blank), [2, 5]);
    assert!(reject_lines(&blank)[0].starts_with(&format!("line 4: {sex3}")));

    let first = read(case!("crlf-first-row-err.csv"));
    let lines = reject_lines(&first);
    assert!(lines[0].starts_with(r#"line 2: sex: "7""#), "{lines:?}");
    assert!(
        lines[1].starts_with(&format!("line 4: {sex3}")),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2);

    let embedded = read(case!("crlf-embedded-newline-valueerr.csv"));
    assert_eq!(row_lines(&embedded), [2, 3, 6]);
    assert!(reject_lines(&embedded)[0].starts_with(&format!("line 5: {sex3}")));

    let good = read(case!("crlf-embedded-newline-good.csv"));
    assert!(good.rejects.is_empty(), "{:?}", good.rejects);
    assert_eq!(row_lines(&good), [2, 3, 5, 6]);
    assert_eq!(value(&good, 1, "name"), "测试,\"小名\"");
    assert_eq!(value(&good, 1, "desired_occupation"), "门卫\r\n夜班");
}

#[test]
fn handed_gb18030_file_is_detected_and_forcing_utf8_names_the_line_and_the_remedy() {
    let bytes = case!("gb18030.csv");
    // Five Chinese characters read as Chinese in Big5 as well: the file is refused, naming the
    // line and the encoding to name; named, it is read.
    let err = import(bytes, &Options::default(), None, &schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"line 2 is not UTF-8 (it looks like GB18030/GBK): it reads as Chinese in GB18030/GBK and in Big5 alike, with too little text outside ASCII (5 characters) to tell which: if it is GBK or GB18030 (Chinese Excel's "CSV"), pass --encoding gb18030; otherwise save it as "CSV UTF-8" and import that"#
    );
    let named = Options {
        encoding: Some(Encoding::Gb18030),
        ..Default::default()
    };
    let imported = import(bytes, &named, None, &schema()).unwrap();
    assert_eq!(imported.encoding, Encoding::Gb18030);
    assert!(imported.rejects.is_empty(), "{:?}", imported.rejects);
    assert_eq!(value(&imported, 0, "name"), "测试丙");
    assert_eq!(value(&imported, 0, "desired_occupation"), "保安");
    assert_eq!(row_lines(&imported), [2]);

    let utf8 = Options {
        encoding: Some(Encoding::Utf8),
        ..Default::default()
    };
    let err = import(bytes, &utf8, None, &schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"line 2 is not UTF-8 (it looks like GB18030/GBK): save it as "CSV UTF-8" or pass --encoding gb18030"#
    );
}

#[test]
fn gb18030_four_byte_characters_outside_gbk_decode_right() {
    // 𠮷 (U+20BB7) and 䶮 (U+4DAE) are not in GBK: GB18030 gives them four-byte sequences.
    let text = format!(
        "{HEADER}\r\n{}\r\n",
        seeker(1, "1").replace("张三", "吉𠮷䶮")
    );
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
    assert!(!unmappable);
    let four_byte = |w: &[u8]| (0x81..=0xfe).contains(&w[0]) && w[1].is_ascii_digit();
    assert!(bytes.windows(2).any(four_byte));
    for forced in [None, Some(Encoding::Gb18030), Some(Encoding::Gbk)] {
        let options = Options {
            encoding: forced,
            ..Default::default()
        };
        let imported = import(&bytes, &options, None, &schema()).unwrap();
        assert_eq!(value(&imported, 0, "name"), "吉𠮷䶮", "{forced:?}");
    }
    // GBK's own encoder cannot write them; the import reads a GBK file as its superset.
    let (_, _, unmappable) = encoding_rs::GBK.encode("𠮷");
    assert!(unmappable);
}

#[test]
fn a_big5_or_shift_jis_file_is_not_taken_for_gb18030_nor_a_gbk_file_of_rare_names_for_them() {
    let file = |rows: &[(&str, &str)]| {
        let mut text = format!("{HEADER}\r\n");
        for (n, (name, job)) in rows.iter().enumerate() {
            let row = seeker(n as u32 + 1, "1");
            text.push_str(&row.replace("张三", name).replace("保安", job));
            text.push_str("\r\n");
        }
        text
    };
    // Traditional Chinese (Big5) and Japanese (Shift_JIS) bytes mostly decode as GB18030 too,
    // many of them into ordinary GB 2312 characters (陳雅萱 and 黃偉誠 do): the detector's
    // character frequencies refuse them, naming the encoding, rather than store that.
    for (encoding, rows) in [
        (encoding_rs::BIG5, &[("陳志明", "保全")][..]),
        (encoding_rs::BIG5, &[("陳雅萱", "保全")][..]),
        (encoding_rs::BIG5, &[("黃偉誠", "電工")][..]),
        (
            encoding_rs::BIG5,
            &[("李建宏", "電工"), ("謝長廷", "廚師")][..],
        ),
        (encoding_rs::SHIFT_JIS, &[("山田太郎", "警備員")][..]),
    ] {
        let text = file(rows);
        let (bytes, _, unmappable) = encoding.encode(&text);
        assert!(!unmappable, "{}", encoding.name());
        let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("(it looks like {})", encoding.name())),
            "{}: {err}",
            encoding.name()
        );
    }
    // GBK files with given names outside GB 2312 are read as GBK, from a few rows on; and so are
    // GB18030's four-byte characters.
    let rare = [
        ("王喆", "保安"),
        ("刘珺", "保安"),
        ("王玥", "电工"),
        ("李镕", "厨师"),
        ("张堃", "保洁"),
        ("刘燊", "司机"),
        ("王珺瑄", "保安"),
    ];
    for rows in [
        &rare[..],
        &rare[2..],
        &[("吉𠮷", "保安")][..],
        &[("陈美丽", "保全人员"), ("王小明", "电工"), ("王喆", "保安")][..],
    ] {
        let text = file(rows);
        let (bytes, _, _) = encoding_rs::GB18030.encode(&text);
        let imported = import(&bytes, &Options::default(), None, &schema()).unwrap();
        assert_eq!(imported.encoding, Encoding::Gb18030);
        assert_eq!(value(&imported, 0, "name"), rows[0].0);
    }
    // A single row reads as Chinese in both: too little text to be sure, the refusal says so and
    // how to name the encoding, and named, the file is read.
    for name in ["王喆", "张三"] {
        let text = file(&[(name, "保安")]);
        let (bytes, _, _) = encoding_rs::GBK.encode(&text);
        let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
        assert!(err.to_string().contains("too little text"), "{err}");
    }
    let text = file(&[("刘珺", "保安")]);
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("too little text outside ASCII"), "{said}");
    assert!(said.contains("pass --encoding gb18030"), "{said}");
    let named = Options {
        encoding: Some(Encoding::Gbk),
        ..Default::default()
    };
    let imported = import(&bytes, &named, None, &schema()).unwrap();
    assert_eq!(value(&imported, 0, "name"), "刘珺");
    // A GB18030 file refused for looking like Big5 is read when its encoding is named.
    let text = file(&[("陳志明", "保全")]);
    let (bytes, _, _) = encoding_rs::BIG5.encode(&text);
    let named = Options {
        encoding: Some(Encoding::Gb18030),
        ..Default::default()
    };
    assert!(import(&bytes, &named, None, &schema()).is_ok());
}

#[test]
fn short_or_late_text_of_other_encodings_is_refused_never_read_as_gb18030() {
    // Rows past the 90th repeat ID numbers: the file is refused before rows are checked.
    let row = |n: u32, name: &str| {
        seeker(n % 90 + 1, "1")
            .replace("张三", name)
            .replace("保安", "")
    };
    let refused = |bytes: &[u8], looks_like: &str| {
        let err = import(bytes, &Options::default(), None, &schema()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("(it looks like {looks_like})")),
            "{err}"
        );
    };
    // One short name in Big5 whose bytes are common GB 2312 characters (楊詠晴 would read 法碟锤).
    for name in ["楊詠晴", "曾華", "謝豪晴", "蘇賢華"] {
        let text = format!("{HEADER}\n{}\n", row(1, name));
        let (bytes, _, _) = encoding_rs::BIG5.encode(&text);
        let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
        assert!(
            err.to_string().contains("pass --encoding gb18030"),
            "{name}: {err}"
        );
    }
    // Big5 text only after a mebibyte of ASCII rows.
    let mut text = format!("{HEADER}\n");
    let mut n = 1;
    while text.len() < 1 << 20 {
        text.push_str(&row(n, "Chen"));
        text.push('\n');
        n += 1;
    }
    for name in ["陳雅萱", "黃偉誠", "林志明", "張淑芬", "李建宏"].repeat(20) {
        text.push_str(&row(n, name));
        text.push('\n');
        n += 1;
    }
    let (bytes, _, _) = encoding_rs::BIG5.encode(&text);
    refused(&bytes, "Big5");
    // Cyrillic and Latin text in Windows code pages decodes as GB18030 too, and so does KOI8-R
    // text whose letters stand before digits, as a GB18030 four-byte sequence would.
    let text = format!("{HEADER}\n{}\n", row(1, "Иванов"));
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    refused(&bytes, "windows-1251");
    let mut text = format!("{HEADER}\n");
    for n in 1..=20 {
        text.push_str(&row(n, &format!("Анна Попова ул Мира д{n}к1")));
        text.push('\n');
    }
    let (bytes, _, _) = encoding_rs::KOI8_R.encode(&text);
    let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
    assert!(err.to_string().contains("is not UTF-8"), "{err}");
    // A Big5 file with one character of its own (user-defined, bytes 81 40, which Big5's
    // decoder does not know) is not read as GB18030 either.
    let mut text = format!("{HEADER}\n");
    for (n, name) in ["陳雅萱", "黃偉誠", "林志明", "張淑芬"]
        .repeat(5)
        .iter()
        .enumerate()
    {
        text.push_str(&row(n as u32 + 1, name));
        text.push('\n');
    }
    let (mut bytes, _, _) = encoding_rs::BIG5.encode(&text);
    let bytes = bytes.to_mut();
    let at = bytes.len() - 40;
    bytes.splice(at..at, [0x81, 0x40]);
    let err = import(bytes, &Options::default(), None, &schema()).unwrap_err();
    assert!(err.to_string().contains("is not UTF-8"), "{err}");
    // GBK bytes that happen to be valid UTF-8 (郑伟 reads as ֣ΰ) are not taken for UTF-8;
    // UTF-8 text of one alphabet is.
    let text = format!("{HEADER}\n{}\n", row(1, "郑伟"));
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    assert!(std::str::from_utf8(&bytes).is_ok());
    let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
    assert!(err.to_string().contains("pass --encoding gb18030"), "{err}");
    let named = Options {
        encoding: Some(Encoding::Gb18030),
        ..Default::default()
    };
    let imported = import(&bytes, &named, None, &schema()).unwrap();
    // Read right, and rejected for the occupation the row leaves out.
    assert_eq!(imported.rejects[0].values[2], "郑伟");
    for name in ["Иванов", "Müller", "Παπαδόπουλος"] {
        let text = format!("{HEADER}\n{}\n", row(1, name));
        let imported = import(text.as_bytes(), &Options::default(), None, &schema()).unwrap();
        assert_eq!(imported.encoding, Encoding::Utf8);
    }
}

#[test]
fn bytes_in_no_known_encoding_name_the_line() {
    let mut bytes = format!("{HEADER}\n{}\n", seeker(1, "1")).into_bytes();
    bytes.extend_from_slice(b"S2,\xff\xff\xff\n");
    let err = import(&bytes, &Options::default(), None, &schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"line 3 is not UTF-8: save it as "CSV UTF-8" and import that"#
    );
    let gb = Options {
        encoding: Some(Encoding::Gb18030),
        ..Default::default()
    };
    let err = import(&bytes, &gb, None, &schema()).unwrap_err();
    assert!(
        err.to_string().starts_with("line 3 is not GB18030: "),
        "{err}"
    );
    // Forcing GB18030 on a UTF-8 file with a byte order mark is caught.
    let bom = format!("\u{feff}{HEADER}\n{}\n", seeker(1, "1"));
    let err = import(bom.as_bytes(), &gb, None, &schema()).unwrap_err();
    assert!(err.to_string().contains("leave out --encoding"), "{err}");
    let err = import(b"\xff\xfea\x00", &Options::default(), None, &schema()).unwrap_err();
    assert_eq!(err, ImportError::Utf16 { bom: true });
    // Without its mark, UTF-16 (little- or big-endian) is known by its NUL bytes, whatever
    // encoding is named.
    let text = format!("{HEADER}\r\n{}\r\n", seeker(1, "1"));
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for (bytes, encoding) in [(&le, None), (&be, None), (&le, Some(Encoding::Gb18030))] {
        let options = Options {
            encoding,
            ..Default::default()
        };
        let err = import(bytes, &options, None, &schema()).unwrap_err();
        assert_eq!(err, ImportError::Utf16 { bom: false });
        assert!(err.to_string().contains("NUL bytes"), "{err}");
    }
}

#[test]
fn lines_count_blank_lines_cr_endings_and_quoted_line_breaks() {
    let rows = [
        seeker(1, "1"),
        seeker(2, "3"),
        seeker(3, "1"),
        seeker(4, "3"),
    ];
    let quoted = |row: &str, nl: &str| row.replace("张三", &format!("\"张{nl}{nl}三\""));
    for nl in ["\n", "\r\n", "\r"] {
        // Header on line 1; blank lines 2 and 3; a record spanning lines 4–6; blank line 7; ...
        let text = format!(
            "{HEADER}{nl}{nl}{nl}{}{nl}{nl}{}{nl}{}{nl}{nl}{nl}{}{nl}",
            quoted(&rows[0], nl),
            rows[1],
            quoted(&rows[2], nl),
            rows[3]
        );
        let imported = read(text.as_bytes());
        assert_eq!(row_lines(&imported), [4, 9], "{nl:?}");
        let bad: Vec<usize> = imported.rejects.iter().map(|r| r.line).collect();
        assert_eq!(bad, [8, 14], "{nl:?}");
        assert_eq!(value(&imported, 0, "name"), format!("张{nl}{nl}三"));
    }
}

#[test]
fn byte_order_mark_and_spreadsheet_padding_are_ignored() {
    let text = format!(
        "\u{feff} seeker_id ,{},,,\r\n{},,,\r\n,,,,,,,,,,,,,,\r\n{}\r\n{},,x,\r\n,,,\r\n",
        &HEADER["seeker_id,".len()..],
        seeker(1, "1"),
        seeker(2, "1"),
        seeker(3, "1"),
    );
    let imported = read(text.as_bytes());
    assert_eq!(imported.encoding, Encoding::Utf8);
    assert_eq!(imported.header[0], "seeker_id");
    assert_eq!(imported.header.len(), 12);
    assert_eq!(row_lines(&imported), [2, 4]);
    assert_eq!(imported.skipped, 2);
    assert_eq!(
        reject_lines(&imported),
        ["line 5: -: has 15 values for the header's 12 columns: check the row's commas and quotes"]
    );
    assert_eq!(imported.read(), 5);
    // The refused row keeps every value for the reject file.
    assert_eq!(imported.rejects[0].values[13], "x");
}

#[test]
fn every_problem_of_every_bad_row_is_kept_and_a_repeated_key_names_the_first() {
    let mut text = format!("{HEADER}\n");
    for n in 1..=30 {
        text.push_str(&format!(
            "{}\n",
            seeker(n % 9 + 1, "3").replace("2026-11-01", "x")
        ));
    }
    let imported = read(text.as_bytes());
    assert!(imported.rows.is_empty());
    assert_eq!(imported.rejects.len(), 30);
    assert!(imported.rejects.iter().all(|r| r.problems.len() >= 2));
    let lines = reject_lines(&imported);
    assert!(lines[0].starts_with("line 2: sex: "), "{lines:?}");
    assert!(lines[1].starts_with("line 2: registered_on: "), "{lines:?}");

    let text = format!(
        "{HEADER}\n{}\n{}\n{}\n",
        seeker(1, "1"),
        seeker(2, "1"),
        seeker(1, "1")
    );
    let imported = read(text.as_bytes());
    assert_eq!(row_lines(&imported), [2, 3]);
    assert_eq!(
        reject_lines(&imported),
        [r#"line 4: key: key "S1" is also on line 2: keep one row per key"#]
    );
}

#[test]
fn the_reject_file_holds_the_bad_rows_as_read_and_imports_once_corrected() {
    let imported = read(case!("crlf-first-row-err.csv"));
    let file = imported.reject_file();
    assert!(file.starts_with("\u{feff}".as_bytes()));
    let text = std::str::from_utf8(&file).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').split("\r\n");
    assert_eq!(lines.next().unwrap(), format!("{HEADER},_problems"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("QA-LN-0001,420502197101015552,测试,7,"),
        "{row}"
    );
    assert!(row.contains(r#","line 2: sex: ""7"" is not in"#), "{row}");
    let corrected = text
        .replace(",7,1971", ",1,1971")
        .replace(",3,1971", ",1,1971");
    let again = read(corrected.as_bytes());
    assert!(again.rejects.is_empty(), "{:?}", again.rejects);
    assert_eq!(again.rows.len(), 2);
    assert_eq!(read(case!("crlf-plain-valueerr.csv")).rejects.len(), 1);
    assert!(
        read(case!("crlf-embedded-newline-good.csv"))
            .reject_file()
            .is_empty()
    );
}

#[test]
fn json_lines_become_aligned_rows_with_their_lines() {
    let text = "{\"a\": \"x\", \"b\": 2}\r\n\r\n{\"b\": true, \"c\": null}\n";
    let t = json_lines(parse::physical_lines(text)).unwrap();
    assert_eq!(t.columns, ["a", "b", "c"]);
    assert_eq!(t.rows, [vec!["x", "2", ""], vec!["", "true", ""]]);
    assert_eq!(t.lines, [1, 3]);
    let err = json_lines([(4, "{\"a\": [1]}")].into_iter()).unwrap_err();
    assert!(
        err.to_string().starts_with("line 4: a: values must be"),
        "{err}"
    );

    let jsonl = Options {
        format: Format::JsonLines,
        ..Default::default()
    };
    let record = |n: u32, sex: &str| {
        format!(
            r#"{{"seeker_id":"S{n}","id_number":"{}","name":"张三","sex":"{sex}","desired_occupation":"保安","registered_on":"2026-11-01"}}"#,
            id(n * 10 + 1)
        )
    };
    let text = format!("{}\n\n{}\n", record(1, "1"), record(2, "5"));
    let imported = import(text.as_bytes(), &jsonl, None, &schema()).unwrap();
    assert_eq!(row_lines(&imported), [1]);
    assert!(reject_lines(&imported)[0].starts_with(r#"line 3: sex: "5""#));
    let rejects = String::from_utf8(imported.reject_file()).unwrap();
    assert!(rejects.contains(r#""sex":"5""#) && rejects.contains(r#""_problems":"line 3: sex"#));
    let again = import(
        rejects.replace(r#""5""#, r#""1""#).as_bytes(),
        &jsonl,
        None,
        &schema(),
    );
    assert_eq!(again.unwrap().rows.len(), 1);
    assert_eq!(Format::from_file_name("x.CSV"), Format::Csv);
    assert_eq!(Format::from_file_name("x.jsonl"), Format::JsonLines);
}

/// A bureau's export: a title row, Chinese headers, typed dates, 男/女, a remarks column, a
/// footer, cancelled registrations to leave out, and no street column.
fn bureau_export() -> String {
    [
        "西陵区求职人员登记表,,,,,,,".to_owned(),
        "登记号,身份证号,姓名,性别,出生日期,求职工种,登记日期,状态,备注".to_owned(),
        format!("S1,{},张三,男,1970/01/01,保安,2026年11月1日,有效,", id(1)),
        format!("S2,{},李四,女,1970年1月1日,保洁,20261102,有效,夜班", id(2)),
        format!("S3,{},王五,男,01.01.1970,保安,2026-11-03,有效,", id(3)),
        format!("S4,{},赵六,男,1970/01/01,保安,2026-11-03,注销,", id(5)),
        format!("S5,{},钱七,未知,1970-01-01,保安,2026-11-03,有效,", id(7)),
        "制表人：张科员,,,,,,,".to_owned(),
        String::new(),
    ]
    .join("\r\n")
}

const BUREAU_MAPPING: &str = r#"
[skip]
title_rows = 1
footer_rows = 1
when = [{ column = "状态", equals = "注销" }]

[columns]
"登记号" = "seeker_id"
"身份证号" = "公民身份号码 citizen ID number"
"姓名" = "name"
"性别" = { item = "sex", codes = { "男" = "1", "女" = "2" } }
"出生日期" = { item = "birth_date", date_formats = ["%Y/%m/%d", "%Y年%m月%d日"] }
"求职工种" = "desired_occupation"
"登记日期" = { item = "registered_on", date_formats = ["%Y年%m月%d日", "%Y%m%d"] }
"状态" = false
"备注" = false

[defaults]
street_code = "420502002"
"#;

#[test]
fn a_mapping_renames_converts_translates_defaults_and_skips() {
    let export = bureau_export();
    let (gb, _, _) = encoding_rs::GB18030.encode(&export);
    let imported = with_mapping(&gb, BUREAU_MAPPING).unwrap();
    assert_eq!(imported.encoding, Encoding::Gb18030);
    assert_eq!(row_lines(&imported), [3, 4]);
    assert_eq!(imported.skipped, 1);
    assert_eq!(value(&imported, 0, "sex"), "1");
    assert_eq!(value(&imported, 1, "sex"), "2");
    assert_eq!(value(&imported, 0, "birth_date"), "1970-01-01");
    assert_eq!(value(&imported, 1, "birth_date"), "1970-01-01");
    assert_eq!(value(&imported, 0, "registered_on"), "2026-11-01");
    assert_eq!(value(&imported, 1, "registered_on"), "2026-11-02");
    assert_eq!(value(&imported, 1, "street_code"), "420502002");
    let lines = reject_lines(&imported);
    assert_eq!(
        lines[0],
        r#"line 5: birth_date: "01.01.1970" (column "出生日期") is not a date in the mapping's forms %Y/%m/%d, %Y年%m月%d日, nor YYYY-MM-DD"#
    );
    // A value outside the translations is checked as it is.
    assert!(lines[1].starts_with("line 7: sex: "), "{lines:?}");
    assert_eq!(lines.len(), 2);
    // The reject file keeps the title and footer rows, so it imports with the same mapping.
    let rejects = String::from_utf8(imported.reject_file()).unwrap();
    assert!(
        rejects.starts_with("\u{feff}西陵区求职人员登记表,,,,,,,\r\n登记号,"),
        "{rejects}"
    );
    assert!(rejects.ends_with("制表人：张科员,,,,,,,\r\n"), "{rejects}");
    let corrected = rejects
        .replace("01.01.1970", "1970/1/1")
        .replace("未知", "男");
    let again = with_mapping(corrected.as_bytes(), BUREAU_MAPPING).unwrap();
    assert!(again.rejects.is_empty(), "{:?}", again.rejects);
    assert_eq!(row_lines(&again), [3, 4]);
}

#[test]
fn a_mapping_that_does_not_fit_is_refused_with_what_is_allowed() {
    let export = bureau_export();
    let err = |mapping: &str| {
        with_mapping(export.as_bytes(), mapping)
            .unwrap_err()
            .to_string()
    };
    let e = err("colums = {}");
    assert!(
        e.contains(
            "unknown field `colums`, expected one of `encoding`, `skip`, `columns`, `defaults`"
        ),
        "{e}"
    );
    let e = err("[skip]\ntitle = 1");
    assert!(
        e.contains("expected one of `title_rows`, `footer_rows`, `when`"),
        "{e}"
    );
    let e = err("[columns]\n\"性别\" = { item = \"sex\", code = {} }");
    assert!(
        e.contains("expected one of `item`, `date_formats`, `codes`"),
        "{e}"
    );
    let e = err("[columns]\n\"出生日期\" = { item = \"birth_date\", date_formats = [\"%Q\"] }");
    assert!(e.contains("is not a chrono strftime format"), "{e}");
    let e = err("[columns]\n\"电话\" = \"phone\"");
    assert!(
        e.contains(r#"names column "电话", which the file's header does not have"#),
        "{e}"
    );
    let e = err(&BUREAU_MAPPING.replace("\"姓名\" = \"name\"", "\"姓名\" = \"nom\""));
    assert!(
        e.contains(r#"[columns] "姓名" = "nom": column "nom" is not an item"#),
        "{e}"
    );
    // Without a mapping the title row is taken as the header and names no item.
    let e = err("");
    assert!(
        e.contains(r#"column "西陵区求职人员登记表" is not an item of this catalog"#),
        "{e}"
    );
    assert!(
        e.contains("map the column to an item in a mapping file's [columns]"),
        "{e}"
    );
    let e = err("encoding = \"latin1\"");
    assert!(
        e.contains("unknown encoding \"latin1\": use utf-8, gb18030 or gbk"),
        "{e}"
    );
    let e = err(&BUREAU_MAPPING.replace("street_code", "seeker_id"));
    assert!(e.contains("a default is for an item the file lacks"), "{e}");
    let e = err(&BUREAU_MAPPING.replace("\"备注\" = false", "\"备注\" = \"name\""));
    assert!(
        e.contains(r#"columns "姓名" and "备注" both give item name"#),
        "{e}"
    );
}

#[test]
fn the_example_mapping_meets_its_schema_and_reads_an_export() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema");
    let schema_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("mapping.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema_json).unwrap();
    let example = std::fs::read_to_string(root.join("examples/job-seekers.mapping.toml")).unwrap();
    let as_json: serde_json::Value = toml::from_str(&example).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&as_json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    for (text, reason) in [
        ("colums = {}", "unknown top-level key"),
        ("[columns]\nx = 1", "a column as a number"),
        ("[skip]\ntitle_rows = -1", "a negative count"),
    ] {
        let bad: serde_json::Value = toml::from_str(text).unwrap();
        assert!(!validator.is_valid(&bad), "{reason}");
    }
    // The example mapping reads the bureau export above.
    let imported = with_mapping(bureau_export().as_bytes(), &example).unwrap();
    assert_eq!(imported.rows.len(), 2);
    assert_eq!(imported.rejects.len(), 2);
}

#[test]
fn a_large_file_is_checked_on_every_core_with_rows_rejects_and_repeated_keys_in_line_order() {
    // More rows than one thread checks: chunks run in parallel, and their results join in order.
    let rows = 35_000;
    let mut text = format!("{HEADER}\n");
    for n in 1..=rows {
        let key = match n {
            // Repeats the key of line 4 (row 3), from another chunk.
            30_000 => "S3".to_owned(),
            n => format!("S{n}"),
        };
        let sex = if n == 20_000 { "x" } else { "1" };
        text.push_str(&format!(
            "{key},{},张三,{sex},,,,保安,,,2026-11-01,420502002\n",
            id(1)
        ));
    }
    let imported = read(text.as_bytes());
    let lines: Vec<usize> = imported.rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, [20_001, 30_001]);
    assert_eq!(imported.rejects[0].problems[0].item, "sex");
    assert!(
        imported.rejects[1].problems[0]
            .problem
            .contains("is also on line 4"),
        "{:?}",
        imported.rejects[1].problems
    );
    let good = row_lines(&imported);
    assert_eq!(good.len(), rows - 2);
    assert!(good.windows(2).all(|w| w[0] < w[1]), "rows in line order");
    assert_eq!(value(&imported, rows - 3, "seeker_id"), format!("S{rows}"));
}
