//! `tierlink records import` against a running node: the handed cases, mapping files, dry runs,
//! reject files, and an import interrupted then run again.

mod util;

use std::path::{Path, PathBuf};

use tierlink_client::{Batching, NodeClient};
use tierlink_core::catalog::{RecordSchema, gb11643_check_digit, parse_catalogs};
use tierlink_core::config::NodeDir;
use tierlink_core::import::{self, Options};
use util::*;

const SEEKERS: &str = "301001001/000001";
const HEADER: &str = "seeker_id,id_number,name,sex,birth_date,phone,education,desired_occupation,desired_wage,unemployed_since,registered_on,street_code";

/// A street node serving the job-seekers catalog, in a temporary directory.
struct Street {
    root: tempfile::TempDir,
    dir: String,
    _server: Server,
}

impl Street {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ca = root.path().join("ca");
        ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
        let dir = init_unit(root.path(), "420502002", "street", Some("420502"));
        let server = serve(Path::new(&dir));
        let catalog = example("job-seekers.json");
        ok(&["catalog", "add", "--node", &dir, catalog.to_str().unwrap()]);
        Street {
            root,
            dir,
            _server: server,
        }
    }

    /// A path in the temporary directory.
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// A handed case's input, copied beside the others so its reject file lands there.
    fn case(&self, name: &str) -> String {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cases")
            .join(name);
        let to = self.path(name);
        std::fs::copy(from, &to).unwrap();
        to.to_str().unwrap().to_owned()
    }

    fn import(&self, file: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "records",
            "import",
            "--node",
            &self.dir,
            "--catalog",
            SEEKERS,
            file,
        ];
        args.extend(extra);
        tierlink(&args)
    }

    /// Every stored record, as `records query` prints them.
    fn records(&self) -> Vec<serde_json::Value> {
        let out = ok(&[
            "records",
            "query",
            "--node",
            &self.dir,
            "--catalog",
            SEEKERS,
            "--limit",
            "100000",
        ]);
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A valid ID number of someone born on 1970-01-01 with sequence `seq`, and the sex it encodes.
fn id(seq: usize) -> (String, &'static str) {
    let first17 = format!("42050219700101{seq:03}");
    let sex = if seq % 2 == 1 { "1" } else { "2" };
    let check = gb11643_check_digit(&first17).unwrap();
    (format!("{first17}{check}"), sex)
}

/// `count` job seekers as CSV with CRLF line ends.
fn seekers_csv(count: usize) -> String {
    let mut text = format!("{HEADER}\r\n");
    for n in 0..count {
        let (id, sex) = id(n);
        text.push_str(&format!(
            "S{n:04},{id},求职者{n},{sex},1970-01-01,,,保安,,,2026-11-01,420502002\r\n"
        ));
    }
    text
}

#[test]
fn handed_cases_report_the_line_a_text_editor_shows_and_gb18030_imports() {
    let street = Street::start();
    let expect = [
        ("crlf-plain-valueerr.csv", vec![r#"line 4: sex: "3""#]),
        ("lf-blank-line-valueerr.csv", vec![r#"line 4: sex: "3""#]),
        (
            "crlf-first-row-err.csv",
            vec![r#"line 2: sex: "7""#, r#"line 4: sex: "3""#],
        ),
        (
            "crlf-embedded-newline-valueerr.csv",
            vec![r#"line 5: sex: "3""#],
        ),
    ];
    for (name, lines) in expect {
        let out = street.import(&street.case(name), &[]);
        assert!(!out.status.success(), "{name}");
        let err = stderr(&out);
        let reported: Vec<&str> = err.lines().filter(|l| l.starts_with("  line ")).collect();
        assert_eq!(reported.len(), lines.len(), "{name}: {err}");
        for (got, want) in reported.iter().zip(lines) {
            assert!(got.starts_with(&format!("  {want} ")), "{name}: {err}");
        }
        assert!(err.contains("nothing was written"), "{err}");
        let rejects = street.path(&name.replace(".csv", ".rejects.csv"));
        assert!(rejects.exists(), "{name}");
    }
    assert!(
        street.records().is_empty(),
        "nothing is stored from a file with bad rows"
    );

    let out = street.import(&street.case("crlf-embedded-newline-good.csv"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("wrote 4 records"), "{}", stdout(&out));
    // Five Chinese characters read as Chinese in Big5 too: refused, naming the encoding to name.
    let out = street.import(&street.case("gb18030.csv"), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("gb18030.csv: line 2 is not UTF-8 (it looks like GB18030/GBK)")
            && stderr(&out).contains("pass --encoding gb18030"),
        "{}",
        stderr(&out)
    );
    let out = street.import(&street.case("gb18030.csv"), &["--encoding", "gb18030"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = street.records();
    assert_eq!(records.len(), 5);
    let gb = records.iter().find(|r| r["_key"] == "QA-GBK-0001").unwrap();
    assert_eq!(gb["name"], "测试丙");
    assert_eq!(gb["desired_occupation"], "保安");
    let quoted = records.iter().find(|r| r["_key"] == "QA-NL-0002").unwrap();
    assert_eq!(quoted["name"], "测试,\"小名\"");
    assert_eq!(quoted["desired_occupation"], "门卫\r\n夜班");

    // Forcing UTF-8 names the line and the remedy.
    let out = street.import(&street.case("gb18030.csv"), &["--encoding", "utf-8"]);
    assert!(
        stderr(&out).contains(
            r#"gb18030.csv: line 2 is not UTF-8 (it looks like GB18030/GBK): save it as "CSV UTF-8" or pass --encoding gb18030"#
        ),
        "{}",
        stderr(&out)
    );
}

/// A bureau's export as the example mapping expects it, in GB18030: a title row, Chinese
/// headers, dates typed several ways, 男/女, a cancelled registration and a signature line.
fn bureau_export(bad_date: &str) -> Vec<u8> {
    let (a, _) = id(1);
    let (b, _) = id(2);
    let (c, _) = id(3);
    let (d, _) = id(5);
    let text = [
        "西陵区求职人员登记表,,,,,,,,".to_owned(),
        "登记号,身份证号,姓名,性别,出生日期,求职工种,登记日期,状态,备注".to_owned(),
        format!("B1,{a},张三,男,1970/01/01,保安,2026年11月1日,有效,"),
        format!("B2,{b},李四,女,1970年1月1日,保洁,20261102,有效,夜班"),
        format!("B3,{c},王五,男,{bad_date},保安,2026-11-03,有效,"),
        format!("B4,{d},赵六,男,1970/01/01,保安,2026-11-03,注销,"),
        "制表人：张科员,,,,,,,,".to_owned(),
        String::new(),
    ]
    .join("\r\n");
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
    assert!(!unmappable);
    bytes.into_owned()
}

#[test]
fn a_mapped_export_dry_runs_rejects_and_imports_once_corrected() {
    let street = Street::start();
    let export = street.path("bureau.csv");
    std::fs::write(&export, bureau_export("01.01.1970")).unwrap();
    let export = export.to_str().unwrap();
    let mapping = example("job-seekers.mapping.toml");
    let mapping = mapping.to_str().unwrap();

    let out = street.import(export, &["--mapping", mapping, "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(r#"  line 5: birth_date: "01.01.1970" (column "出生日期") is not a date in the mapping's forms"#),
        "{err}"
    );
    assert!(
        err.contains("dry run of")
            && err.contains(
                "(GB18030): read 4, rejected 1, skipped 1, 2 to write; nothing was stored"
            ),
        "{err}"
    );
    assert!(street.records().is_empty());

    // A real run with a bad row writes nothing, unless --skip-bad.
    let out = street.import(export, &["--mapping", mapping]);
    assert!(
        stderr(&out).contains("nothing was written: 1 record is rejected"),
        "{}",
        stderr(&out)
    );
    assert!(street.records().is_empty());
    let rejects = street.path("bureau-rejects.csv");
    let rejects_arg = rejects.to_str().unwrap();
    let out = street.import(
        export,
        &["--mapping", mapping, "--skip-bad", "--rejects", rejects_arg],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("wrote 2 records to 301001001/000001 on 420502002 (2 new, 0 updated, 0 unchanged); read 4, rejected 1, skipped 1, in "),
        "{}",
        stdout(&out)
    );
    let stored = street.records();
    assert_eq!(stored.len(), 2);
    let b2 = stored.iter().find(|r| r["_key"] == "B2").unwrap();
    assert_eq!(
        (
            &b2["sex"],
            &b2["birth_date"],
            &b2["registered_on"],
            &b2["street_code"]
        ),
        (
            &"2".into(),
            &"1970-01-01".into(),
            &"2026-11-02".into(),
            &"420502002".into()
        )
    );

    // The reject file: UTF-8 with a BOM, the title, header and footer kept, the reason added.
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert!(text.starts_with("\u{feff}西陵区求职人员登记表"), "{text}");
    assert!(text.contains("状态,备注,_problems\r\nB3,"), "{text}");
    let corrected = street.path("bureau-corrected.csv");
    std::fs::write(&corrected, text.replace("01.01.1970", "1970/1/1")).unwrap();
    let out = street.import(corrected.to_str().unwrap(), &["--mapping", mapping]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(1 new, 0 updated, 0 unchanged)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(street.records().len(), 3);
}

#[test]
fn an_import_interrupted_after_some_batches_and_run_again_stores_each_record_once() {
    let street = Street::start();
    let file = street.path("seekers.csv");
    std::fs::write(&file, seekers_csv(1000)).unwrap();
    let file = file.to_str().unwrap();

    // The first run is cut off once three batches of 100 are acknowledged, as a crash would:
    // the fourth and fifth (two requests are in flight at a time) may or may not have reached
    // the node.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = NodeClient::open(NodeDir::load(Path::new(&street.dir)).unwrap()).unwrap();
        let json = client.get_catalog(None, "", SEEKERS).await.unwrap();
        let schema = RecordSchema::new(&parse_catalogs(&json, "node").unwrap()[0]).unwrap();
        let bytes = std::fs::read(file).unwrap();
        let imported = import::import(&bytes, &Options::default(), None, &schema).unwrap();
        assert_eq!(imported.rows.len(), 1000);
        let rows = imported.rows.into_iter().map(|r| r.row.values).collect();
        let (crash, crashed) = tokio::sync::oneshot::channel();
        let mut crash = Some(crash);
        let write =
            client.write_records(SEEKERS, imported.items, rows, Batching::Exactly(100), |n| {
                if n >= 300 {
                    crash.take().map(|c| c.send(()));
                }
            });
        tokio::select! {
            _ = write => panic!("the write finished before the crash"),
            _ = crashed => {}
        }
    });
    let stored = street.records().len();
    assert!((300..=500).contains(&stored), "{stored}");

    let out = street.import(file, &["--batch-size", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = format!(
        "wrote 1000 records to {SEEKERS} on 420502002 ({} new, 0 updated, {stored} unchanged)",
        1000 - stored
    );
    assert!(text.contains(&expected), "{text}");
    let records = street.records();
    assert_eq!(records.len(), 1000);
    assert!(
        records.iter().all(|r| r["_version"] == 1),
        "every record at version 1"
    );

    // Run again: nothing new is stored.
    let out = street.import(file, &[]);
    assert!(
        stdout(&out).contains("(0 new, 0 updated, 1000 unchanged)"),
        "{}",
        stdout(&out)
    );
    let history = ok(&[
        "records",
        "history",
        "--node",
        &street.dir,
        "--catalog",
        SEEKERS,
        "--key",
        "S0001",
    ]);
    assert_eq!(history.matches("\"_version\":").count(), 1, "{history}");
}
