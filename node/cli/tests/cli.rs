//! The `tierlink` binary as an operator uses it: separate processes, files on disk, a node
//! killed with SIGKILL and started again.

mod util;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::*;

const BUILDINGS: &str = "103001001/000001";

fn write_buildings(path: &Path, rows: std::ops::Range<usize>, floors: &str) {
    let mut text =
        String::from("building_code,community_code,楼栋名称 building name,address,floors\n");
    for n in rows {
        text.push_str(&format!(
            "420502001001-B{n:04},420502001001,{n}栋,西陵一路 {n} 号,{floors}\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn an_operator_sets_up_two_nodes_imports_exports_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    ok(&["ca", "init", "--dir", &d("ca"), "--name", "Yichang"]);
    let (street_port, district_port) = (free_port(), free_port());
    let street_listen = format!("127.0.0.1:{street_port}");
    let district_listen = format!("127.0.0.1:{district_port}");
    let street_peer = format!("420502001=https://127.0.0.1:{street_port}");
    ok(&[
        "init",
        "--dir",
        &d("street"),
        "--code",
        "420502001",
        "--tier",
        "street",
        "--parent",
        "420502",
        "--name",
        "西陵街道",
        "--listen",
        &street_listen,
        "--ca",
        &d("ca"),
    ]);
    ok(&[
        "init",
        "--dir",
        &d("district"),
        "--code",
        "420502",
        "--tier",
        "district",
        "--parent",
        "420500",
        "--name",
        "西陵区",
        "--listen",
        &district_listen,
        "--peer",
        &street_peer,
        "--ca",
        &d("ca"),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["street/tls.key", "street/signing.key", "ca/ca.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    // A street that does not extend its parent's code is refused before anything is written.
    let err = fails(&[
        "init",
        "--dir",
        &d("bad"),
        "--code",
        "420503001",
        "--tier",
        "street",
        "--parent",
        "420502",
        "--name",
        "x",
        "--ca",
        &d("ca"),
    ]);
    assert!(err.contains("does not extend its parent's code"), "{err}");
    assert!(!dir.path().join("bad/node.toml").exists());

    let mut server = serve(Path::new(&d("street")));
    let street = d("street");
    ok(&[
        "catalog",
        "add",
        "--node",
        &street,
        example("buildings.json").to_str().unwrap(),
    ]);

    write_buildings(&dir.path().join("good.csv"), 0..1200, "6");
    let out = ok(&[
        "records",
        "import",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        &d("good.csv"),
        "--batch-size",
        "500",
    ]);
    assert!(out.contains("wrote 1200 records"), "{out}");

    // One bad row: the whole file is refused, with its line.
    write_buildings(&dir.path().join("bad.csv"), 1200..1300, "6");
    let mut text = std::fs::read_to_string(dir.path().join("bad.csv")).unwrap();
    text = text.replace(
        "B1250,420502001001,1250栋,西陵一路 1250 号,6",
        "B1250,420502001001,1250栋,西陵一路 1250 号,six",
    );
    std::fs::write(dir.path().join("bad.csv"), text).unwrap();
    let err = fails(&[
        "records",
        "import",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        &d("bad.csv"),
    ]);
    assert!(
        err.contains(r#"line 52: floors: "six" is not a number"#)
            && err.contains("nothing was written"),
        "{err}"
    );
    let listing = ok(&["catalog", "list", "--node", &street]);
    assert!(listing.contains(" 1200  楼栋基础信息"), "{listing}");

    // A second version of one building, then the street exports a query to a file. (Other nodes
    // read it only as principals with grants: see the directory test below.)
    ok(&[
        "records",
        "put",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        r#"{"building_code":"420502001001-B0007","community_code":"420502001001","building_name":"7栋","address":"西陵一路 7 号","floors":9}"#,
    ]);
    let export = d("export.tlb");
    let out = ok(&[
        "records",
        "query",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        "--where",
        "floors=6",
        "--out",
        &export,
    ]);
    assert!(out.contains("verified: 1199 records"), "{out}");
    let out = ok(&["verify", &export, "--ca", &d("ca/ca.crt")]);
    assert!(
        out.contains(
            "OK — 1199 records of 103001001/000001 in 2 batches, signed by 420502001 for 420502001"
        ) && out.contains("sealed to 420502001"),
        "{out}"
    );
    assert!(!out.contains("B0007"), "{out}");
    // The CA alone checks the file; the node it is sealed to reads it.
    let out = ok(&["verify", &export, "--open", "--node", &street]);
    assert!(out.contains("sealed to 420502001; opened"), "{out}");
    assert_eq!(out.matches("\"_key\":").count(), 1199, "{out}");

    let mut bytes = std::fs::read(&export).unwrap();
    let n = bytes.len();
    bytes[n - 200] ^= 0x04;
    std::fs::write(&export, bytes).unwrap();
    let err = fails(&["verify", &export, "--ca", &d("ca/ca.crt")]);
    assert!(err.contains("failed verification"), "{err}");

    // SIGKILL, restart: every acknowledged record and version is there.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let _server = serve(Path::new(&street));
    let out = ok(&[
        "records",
        "query",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        "--limit",
        "5000",
    ]);
    assert!(out.contains("verified: 1200 records"), "{out}");
    let history = ok(&[
        "records",
        "history",
        "--node",
        &street,
        "--catalog",
        BUILDINGS,
        "--key",
        "420502001001-B0007",
    ]);
    assert!(
        history.contains(r#""_version":1"#)
            && history.contains(r#""_version":2"#)
            && history.contains(r#""floors":"9""#),
        "{history}"
    );
}

#[test]
fn the_demo_runs_and_verifies_every_exchange() {
    let out = ok(&["demo", "--residents", "600", "--buildings", "80"]);
    for expected in [
        "via 420502",
        "verified offline with ca.crt alone",
        "records digest mismatch",
        "versions [1, 2]",
        "refused (permission denied",
        "every batch verified",
        "420503001  via 420503",
        "the streets and the district published 14 catalogs in the directory",
        "reply     by chen@420502001",
        "report    by guo@420502",
        "OVERDUE since",
        "verification cases: 6 raised",
        "2 closed (corrected), 4 sent back",
        "420502001/4                          1        1        0       1",
        "matching items: 公民身份号码",
        "node 420502001: follows its district",
        "420503     voter",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// Starts `tierlink demo --serve` in `fed` and waits for its federation.json; the demo is killed
/// when the returned server drops, whether the test passes or not.
fn serve_demo(fed: &Path, buildings: &str) -> Server {
    let child = Command::new(BIN)
        .args([
            "demo",
            "--residents",
            "100",
            "--buildings",
            buildings,
            "--serve",
        ])
        .args(["--dir", fed.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let demo = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fed.join("federation.json").exists() {
        assert!(Instant::now() < deadline, "no federation.json");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    demo
}

#[test]
fn the_demo_can_keep_serving_and_describes_the_federation() {
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let _demo = serve_demo(&fed, "10");
    let manifest = fed.join("federation.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes[2]["parent"], "420502");
    for key in ["ca_cert", "tls_cert", "tls_key", "endpoint"] {
        assert!(nodes[0][key].is_string(), "{key}");
    }
    // Still serving: the city's node directory reads the street's catalogs.
    let city = nodes[0]["dir"].as_str().unwrap();
    let listing = ok(&["catalog", "list", "--node", city, "--target", "420502001"]);
    assert!(listing.contains("101001001/000001"), "{listing}");
    // Every node holds the directory the streets published to.
    for node in nodes {
        let dir = node["dir"].as_str().unwrap();
        let found = ok(&["directory", "search", "--node", dir, "公民身份号码"]);
        assert!(found.contains("5 catalog(s)"), "{found}");
    }
}

/// A resident of the demo street as the JSON object `records put` takes.
fn resident(n: usize) -> String {
    let row = tierlink_sandbox::sample::residents("420502001", n + 1, 77).remove(n);
    let object: serde_json::Map<String, serde_json::Value> =
        tierlink_sandbox::sample::RESIDENT_COLUMNS
            .iter()
            .zip(&row)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (c.to_string(), serde_json::Value::from(v.as_str())))
            .collect();
    serde_json::Value::Object(object).to_string()
}

/// Runs `tierlink args…` as `token`'s principal with stdout piped, its lines sent on a channel
/// as they come.
fn following(token: &str, args: &[&str]) -> (Server, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("TIERLINK_NODE")
        .env("TIERLINK_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (Server(child), received)
}

#[test]
fn a_follower_prints_each_new_version_once_across_its_restarts() {
    const RESIDENTS: &str = "101001001/000001";
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let _demo = serve_demo(&fed, "5");
    let (district, street) = (fed.join("district-420502"), fed.join("street-420502001"));
    let (district, street) = (district.to_str().unwrap(), street.to_str().unwrap());
    let added = ok(&[
        "principal",
        "add",
        "--node",
        district,
        "zhou",
        "--role",
        "420502/civil-affairs",
    ]);
    let token = added.lines().last().unwrap().trim().to_owned();
    let resume = dir.path().join("residents.resume");
    let follow = [
        "records",
        "follow",
        "--node",
        district,
        "--target",
        "420502001",
        "--catalog",
        RESIDENTS,
        "--as",
        "zhou",
        "--role",
        "420502/civil-affairs",
        "--purpose",
        "subsistence allowance review",
        "--resume-file",
        resume.to_str().unwrap(),
    ];
    let put = |n: usize| {
        ok(&[
            "records",
            "put",
            "--node",
            street,
            "--catalog",
            RESIDENTS,
            &resident(n),
        ])
    };
    let key = |line: &str| -> String {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        record["_key"].as_str().unwrap().to_owned()
    };
    let wait = Duration::from_secs(30);

    let person = |n: usize| -> String {
        let written: serde_json::Value = serde_json::from_str(&resident(n)).unwrap();
        written["person_id"].as_str().unwrap().to_owned()
    };

    // From now: a resident written while following is printed once, and its token kept. The
    // follower starts from the present, so until it is connected each probe is a resident not
    // yet written (writing the same values again stores no version, and so prints nothing).
    let (follower, lines) = following(&token, &follow);
    let mut probe = 200;
    eventually("the follower connected", || {
        probe += 1;
        put(probe);
        lines.recv_timeout(Duration::from_secs(2)).is_ok()
    });
    // A probe written while it connected may come late: none is left unread or its token unkept.
    while lines.recv_timeout(Duration::from_secs(2)).is_ok() {}
    let kept = || std::fs::read_to_string(&resume).unwrap_or_default();
    eventually("the first token kept", || !kept().is_empty());
    let after_first = kept();
    put(101);
    let first = key(&lines.recv_timeout(wait).unwrap());
    assert_eq!(first, person(101));
    // A line is printed before its token is kept: a follower stopped between the two prints
    // that batch again (each line carries `_key` and `_version` to tell).
    eventually("the token kept", || kept() != after_first);
    drop(follower);

    // Stopped, then started again from the kept token: what was written meanwhile comes once,
    // nothing before it again.
    put(102);
    let (_follower, lines) = following(&token, &follow);
    let second = key(&lines.recv_timeout(wait).unwrap());
    assert_eq!(second, person(102));
    assert!(
        lines.recv_timeout(Duration::from_secs(2)).is_err(),
        "a line twice"
    );
}

fn endpoint(dir: &str) -> String {
    let text = std::fs::read_to_string(Path::new(dir).join("node.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("endpoint")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

/// The leader a node's `directory status` names.
fn leader(node: &str) -> Option<String> {
    let out = tierlink(&["directory", "status", "--node", node]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let first = text.lines().next()?;
    let leader = first.rsplit("leader ").next()?.trim().to_owned();
    (out.status.success() && leader.chars().all(|c| c.is_ascii_digit())).then_some(leader)
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_directory_formed_from_the_command_line_survives_its_leader_killed_with_sigkill() {
    let root = tempfile::tempdir().unwrap();
    ok(&[
        "ca",
        "init",
        "--dir",
        root.path().join("ca").to_str().unwrap(),
    ]);
    let city = init_unit(root.path(), "420500", "city", None);
    let xiling = init_unit(root.path(), "420502", "district", Some("420500"));
    let wujiagang = init_unit(root.path(), "420503", "district", Some("420500"));
    let street = init_unit(root.path(), "420502001", "street", Some("420502"));
    let mut servers: Vec<Option<Server>> = [&city, &xiling, &wujiagang, &street]
        .iter()
        .map(|d| Some(serve(Path::new(d))))
        .collect();

    // The city founds; the districts and the street join through their parents and are approved.
    let text = fails(&["directory", "init", "--node", &street]);
    assert!(text.contains("only the city founds"), "{text}");
    ok(&["directory", "init", "--node", &city]);
    let join = |node: &str, parent: &str| {
        let text = ok(&[
            "directory",
            "join",
            "--node",
            node,
            "--via",
            &endpoint(parent),
        ]);
        assert!(text.contains("approve"), "{text}");
    };
    join(&xiling, &city);
    join(&wujiagang, &city);
    // A node still pending approval is no replica yet: it cannot pass on a join.
    let text = fails(&[
        "directory",
        "join",
        "--node",
        &street,
        "--via",
        &endpoint(&xiling),
    ]);
    assert!(text.contains("not yet a replica"), "{text}");
    let text = fails(&["directory", "approve", "--node", &city, "420502001"]);
    assert!(text.contains("not registered"), "{text}");
    ok(&["directory", "approve", "--node", &city, "420502"]);
    ok(&["directory", "approve", "--node", &city, "420503"]);
    eventually("the districts replicating", || {
        tierlink(&["directory", "members", "--node", &xiling])
            .status
            .success()
            && leader(&xiling).is_some()
    });
    join(&street, &xiling);
    let text = fails(&["directory", "approve", "--node", &wujiagang, "420502001"]);
    assert!(text.contains("only 420502001's parent"), "{text}");
    ok(&["directory", "approve", "--node", &xiling, "420502001"]);
    ok(&["directory", "voters", "--node", &city, "420502", "420503"]);

    // The street publishes its residents catalog; the city finds it by an item's name.
    ok(&[
        "catalog",
        "add",
        "--node",
        &street,
        example("residents.json").to_str().unwrap(),
    ]);
    ok(&["catalog", "publish", "--node", &street, "101001001/000001"]);
    let found = ok(&[
        "directory",
        "search",
        "--node",
        &city,
        "--linearizable",
        "公民身份号码",
    ]);
    assert!(
        found.contains("420502001") && found.contains("1 catalog(s)"),
        "{found}"
    );
    assert!(
        !found.contains("religion"),
        "a not-shared item was published: {found}"
    );
    let members = ok(&["directory", "members", "--node", &street]);
    assert_eq!(members.matches(" active ").count(), 4, "{members}");
    eventually(
        "three voters replicating, the street following its district",
        || {
            let status = ok(&["directory", "status", "--node", &street]);
            let roles: Vec<&str> = status
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .collect();
            let count = |role| roles.iter().filter(|r| **r == role).count();
            count("voter") == 3 && status.contains("follows its district")
        },
    );

    // SIGKILL the leader: the others elect another, keep the published catalog and take writes.
    let first = leader(&street).expect("a leader");
    let at = ["420500", "420502", "420503"]
        .iter()
        .position(|c| *c == first)
        .unwrap();
    servers[at] = None;
    let survivor = [&city, &xiling, &wujiagang][(at + 1) % 3];
    eventually("a new leader", || {
        leader(survivor).is_some_and(|l| l != first)
    });
    ok(&["catalog", "withdraw", "--node", &street, "101001001/000001"]);
    ok(&["catalog", "publish", "--node", &street, "101001001/000001"]);
    let listed = ok(&[
        "directory",
        "catalogs",
        "--node",
        survivor,
        "--linearizable",
    ]);
    assert!(listed.contains("1 catalog(s)"), "{listed}");

    // The killed node restarts and catches up.
    let killed = [&city, &xiling, &wujiagang][at];
    servers[at] = Some(serve(Path::new(killed)));
    eventually("the restarted node to catch up", || {
        ok(&["directory", "catalogs", "--node", killed]).contains("1 catalog(s)")
            && leader(killed).is_some()
    });
    let status = ok(&["directory", "status", "--node", killed]);
    assert!(status.contains("in term"), "{status}");

    // The street rotates its TLS certificate: both are accepted until it retires the old one,
    // which only the restarted node, presenting the new one, may do.
    let old = root.path().join("street-old");
    std::fs::create_dir(&old).unwrap();
    for file in std::fs::read_dir(&street)
        .unwrap()
        .map(|f| f.unwrap().path())
    {
        if file.is_file() {
            std::fs::copy(&file, old.join(file.file_name().unwrap())).unwrap();
        }
    }
    let old = old.to_str().unwrap();
    let ca = root.path().join("ca");
    let text = ok(&[
        "cert",
        "rotate",
        "--node",
        &street,
        "--ca",
        ca.to_str().unwrap(),
        "--only",
        "tls",
    ]);
    assert!(text.contains("restart the node"), "{text}");
    for node in [&street, old] {
        ok(&["catalog", "list", "--node", node, "--target", "420502"]);
    }
    let listed = ok(&[
        "directory",
        "members",
        "--node",
        &street,
        "--linearizable",
        "--certificates",
    ]);
    assert!(
        listed.contains("rotated away from, still accepted"),
        "{listed}"
    );
    let text = fails(&["cert", "retire", "--node", &street]);
    assert!(
        text.contains("still presents its old TLS certificate"),
        "{text}"
    );
    servers[3] = None;
    servers[3] = Some(serve(Path::new(&street)));
    ok(&["cert", "retire", "--node", &street]);
    let text = fails(&["catalog", "list", "--node", old, "--target", "420502"]);
    assert!(
        text.contains("not the one registered for 420502001"),
        "{text}"
    );
    ok(&["catalog", "list", "--node", &street, "--target", "420502"]);
    drop(servers);
}

/// `tierlink` with the principal's token in the environment, as an officer runs it.
fn with_token(token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TIERLINK_NODE")
        .env("TIERLINK_TOKEN", token)
        .output()
        .expect("run tierlink")
}

#[test]
fn an_administrator_grants_an_officer_who_reads_as_a_principal_and_the_audit_catches_tampering() {
    const RESIDENTS: &str = "101001001/000001";
    const PURPOSE: &str = "subsistence allowance review";
    let root = tempfile::tempdir().unwrap();
    ok(&[
        "ca",
        "init",
        "--dir",
        root.path().join("ca").to_str().unwrap(),
    ]);
    let city = init_unit(root.path(), "420500", "city", None);
    let district = init_unit(root.path(), "420502", "district", Some("420500"));
    let street = init_unit(root.path(), "420502001", "street", Some("420502"));
    let mut servers: Vec<Server> = [&city, &district, &street]
        .iter()
        .map(|d| serve(Path::new(d)))
        .collect();
    ok(&["directory", "init", "--node", &city]);
    ok(&[
        "directory",
        "join",
        "--node",
        &district,
        "--via",
        &endpoint(&city),
    ]);
    ok(&["directory", "approve", "--node", &city, "420502"]);
    eventually("the district replicating", || leader(&district).is_some());
    ok(&[
        "directory",
        "join",
        "--node",
        &street,
        "--via",
        &endpoint(&district),
    ]);
    ok(&["directory", "approve", "--node", &district, "420502001"]);
    eventually("the street replicating", || leader(&street).is_some());

    // The street holds residents and publishes the catalog.
    ok(&[
        "catalog",
        "add",
        "--node",
        &street,
        example("residents.json").to_str().unwrap(),
    ]);
    let rows = tierlink_sandbox::sample::residents("420502001", 40, 5);
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> =
                tierlink_sandbox::sample::RESIDENT_COLUMNS
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(c, v)| (c.to_string(), serde_json::Value::from(v.as_str())))
                    .collect();
            serde_json::Value::Object(object).to_string()
        })
        .collect();
    let file = root.path().join("residents.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    ok(&[
        "records",
        "import",
        "--node",
        &street,
        "--catalog",
        RESIDENTS,
        file.to_str().unwrap(),
    ]);
    ok(&["catalog", "publish", "--node", &street, RESIDENTS]);

    // The district defines a role and adds its officer; a node vouches only for its own roles.
    ok(&[
        "role",
        "define",
        "--node",
        &district,
        "civil-affairs",
        "--department",
        "Civil Affairs Bureau",
        "--post",
        "officer",
    ]);
    let added = ok(&[
        "principal",
        "add",
        "--node",
        &district,
        "li",
        "--role",
        "420502/civil-affairs",
    ]);
    let token = added.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("tlk_"), "{added}");
    let err = fails(&[
        "principal",
        "add",
        "--node",
        &district,
        "x",
        "--role",
        "420500/analyst",
    ]);
    assert!(err.contains("not of this unit"), "{err}");

    // The catalog is conditional: a direct grant is refused; the district asks, the street approves.
    let err = fails(&[
        "grant",
        "add",
        "--node",
        &street,
        "--catalog",
        RESIDENTS,
        "--role",
        "420502/civil-affairs",
        "--purpose",
        PURPOSE,
        "--expires",
        "2099-12-31",
        "--others",
        "clear",
    ]);
    assert!(err.contains("conditional"), "{err}");
    ok(&[
        "access",
        "request",
        "--node",
        &district,
        "--id",
        "r1",
        "--producer",
        "420502001",
        "--catalog",
        RESIDENTS,
        "--role",
        "420502/civil-affairs",
        "--purpose",
        PURPOSE,
    ]);
    // Masking the ID number's birth date while the birth date goes in clear hides nothing:
    // refused, naming both items and what to change.
    let approve = [
        "access",
        "approve",
        "--node",
        &street,
        "r1",
        "--expires",
        "2099-12-31",
        "--others",
        "clear",
    ];
    let mask = ["--item", "id_number=mask:6:4"];
    let err = fails(&[&approve[..], &mask].concat());
    assert!(
        err.contains("id_number mask:6:4 hides the birth date, which birth_date sends in clear: withhold birth_date, or withhold id_number"),
        "{err}"
    );
    // To the month, the birth date leaves the day, which the check digit narrows to about 3.
    let month = ["--item", "birth_date=year-month"];
    let err = fails(&[&approve[..], &mask, &month].concat());
    assert!(
        err.contains("id_number mask:6:4 hides the birth date, which birth_date sends as year-month, leaving about 3 candidates for id_number: withhold birth_date, or mask more of id_number (e.g. mask:6:1)"),
        "{err}"
    );
    // Hiding the region too changes nothing: the reader guesses it from the unit.
    let err = fails(&[&approve[..], &["--item", "id_number=mask:0:4"]].concat());
    assert!(
        err.contains("id_number mask:0:4 hides the birth date, which birth_date sends in clear, leaving only its region (characters 1-6), which a reader guesses from the unit the records come from"),
        "{err}"
    );
    ok(&[&approve[..], &month, &["--item", "id_number=mask:6:1"]].concat());
    eventually("the grant replicated to the district", || {
        ok(&["grant", "list", "--node", &district]).contains("r1 ")
    });
    let requests = ok(&["access", "list", "--node", &street]);
    assert!(requests.contains("approved as r1"), "{requests}");

    // explain: each item's fate and the rule behind it.
    let explained = ok(&[
        "explain",
        "--node",
        &street,
        "--principal",
        "li@420502",
        "--role",
        "420502/civil-affairs",
        "--catalog",
        RESIDENTS,
        "--purpose",
        PURPOSE,
    ]);
    for expected in [
        "decided under grant r1",
        "id_number mask:6:1 (named-in-grant) reveals 1-12, 18 of 18, about 1409 candidates: birth date also from birth_date",
        "birth_date year-month (named-in-grant) reveals 1-6 of 8 digits (YYYYMMDD)",
        "named-in-grant",
        "not-shared",
        "core-or-sensitive-needs-named-grant",
    ] {
        assert!(
            explained.contains(expected),
            "missing {expected:?} in:\n{explained}"
        );
    }

    // The officer reads as a principal: ID numbers masked, the manifest said so.
    let query = [
        "records",
        "query",
        "--node",
        &district,
        "--target",
        "420502001",
        "--catalog",
        RESIDENTS,
        "--as",
        "li",
        "--role",
        "420502/civil-affairs",
        "--purpose",
        PURPOSE,
    ];
    let out = with_token(&token, &query);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("verified: 40 records") && text.contains("for li@420502 under grant r1"),
        "{text}"
    );
    assert!(text.contains("redacted: id_number=mask:6:1"), "{text}");
    for row in &rows {
        assert!(
            !text.contains(&row[1]),
            "an ID number left in clear: {}",
            row[1]
        );
        assert!(
            text.contains(&format!("{}***********{}", &row[1][..6], &row[1][17..])),
            "{text}"
        );
    }
    let wrong = with_token("tlk_wrong", &query);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not a Tierlink token"));
    // A system holding an API token of li's reads exactly as li does, until it is revoked.
    let created = ok(&[
        "token",
        "create",
        "--node",
        &district,
        "--principal",
        "li",
        "--expires",
        "2099-12-31",
    ]);
    let api_token = created.lines().last().unwrap().trim().to_owned();
    let id = created.split_whitespace().nth(2).unwrap().to_owned();
    let out = with_token(&api_token, &query);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && text.contains("verified: 40 records")
            && text.contains("for li@420502 under grant r1"),
        "{text}"
    );
    ok(&["token", "revoke", "--node", &district, &id]);
    let revoked = with_token(&api_token, &query);
    let err = String::from_utf8_lossy(&revoked.stderr).to_string();
    assert!(
        !revoked.status.success() && err.contains("the token was revoked at"),
        "{err}"
    );
    let err = fails(&[
        "records",
        "query",
        "--node",
        &district,
        "--target",
        "420502001",
        "--catalog",
        RESIDENTS,
    ]);
    assert!(err.contains("without naming a principal"), "{err}");

    // Who saw the residents' ID numbers, under which grant: one command at the street. The read
    // with the API token is li's, as the one with li's own token.
    let seen = ok(&[
        "audit",
        "query",
        "--node",
        &street,
        "--item",
        "id_number",
        "--key",
        &rows[3][0],
        "--principal",
        "li@420502",
    ]);
    assert!(
        seen.contains("li@420502 as 420502/civil-affairs")
            && seen.contains("under grant r1")
            && seen.contains("2 entries"),
        "{seen}"
    );
    // The records' writes are audited at the street, by the node itself.
    let written = ok(&["audit", "query", "--node", &street, "--catalog", RESIDENTS]);
    assert!(
        written.contains(&format!(
            "stored write of {RESIDENTS} by node 420502001 itself (or its administrator): 40 records"
        )),
        "{written}"
    );
    let json = tierlink(&[
        "audit",
        "query",
        "--node",
        &street,
        "--catalog",
        RESIDENTS,
        "--json",
    ]);
    let lines = String::from_utf8(json.stdout).unwrap();
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "standard output is JSON lines only:\n{lines}"
    );
    assert!(String::from_utf8_lossy(&json.stderr).contains("entries"));
    let received = ok(&["audit", "query", "--node", &district]);
    assert!(
        received.contains("received query") && received.contains("REFUSED"),
        "{received}"
    );
    ok(&["audit", "anchor", "--node", &street]);
    let verified = ok(&["audit", "verify", "--node", &street]);
    assert!(verified.contains("intact"), "{verified}");

    // An entry altered while the node was down is named, here and against the anchor.
    let _ = servers.pop();
    let store = tierlink_store::SledStore::open(&Path::new(&street).join("data")).unwrap();
    let audit = store.keyspace("audit").unwrap();
    // The first of li's reads (entries before it are the records' writes).
    let (sequence, first) = (1u64..)
        .map(|n| (n, audit.get(&n.to_be_bytes()).unwrap().unwrap()))
        .find(|(_, entry)| String::from_utf8_lossy(entry).contains("li@420502"))
        .unwrap();
    let altered = String::from_utf8(first)
        .unwrap()
        .replace("li@420502", "zhao@420502");
    audit
        .apply([(sequence.to_be_bytes().to_vec(), Some(altered.into_bytes()))])
        .unwrap();
    drop(audit);
    drop(store);
    servers.push(serve(Path::new(&street)));
    let err = fails(&["audit", "verify", "--node", &street]);
    assert!(
        err.contains(&format!("broken at entry {sequence}")) && err.contains("altered"),
        "{err}"
    );
}

#[test]
fn an_administrator_creates_lists_and_revokes_api_tokens_bound_to_the_nodes_principals() {
    let root = tempfile::tempdir().unwrap();
    ok(&[
        "ca",
        "init",
        "--dir",
        root.path().join("ca").to_str().unwrap(),
    ]);
    let district = init_unit(root.path(), "420502", "district", Some("420500"));
    ok(&[
        "principal",
        "add",
        "--node",
        &district,
        "records-system",
        "--role",
        "420502/civil-affairs",
    ]);
    let create = |principal: &str, expires: &str, scope: &[&str]| {
        let args = [
            &[
                "token",
                "create",
                "--node",
                &district,
                "--principal",
                principal,
                "--expires",
                expires,
            ][..],
            scope,
        ]
        .concat();
        tierlink(&args)
    };
    let out = create(
        "records-system",
        "2099-12-31",
        &["--scope", "write", "--catalog", "101001001/000001"],
    );
    let created = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{created}");
    assert!(
        created.contains(
            "for records-system@420502, scope write, writing 101001001/000001, working through 2099-12-31 (UTC)"
        ),
        "{created}"
    );
    let secret = created.lines().last().unwrap().trim().to_owned();
    let id = created.split_whitespace().nth(2).unwrap().to_owned();
    assert!(
        secret.starts_with("tlk_") && secret.len() == 42,
        "{created}"
    );
    let file = std::fs::read_to_string(Path::new(&district).join("tokens.toml")).unwrap();
    assert!(!file.contains(&secret), "only the hash is kept:\n{file}");

    let listed = ok(&["token", "list", "--node", &district]);
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    for expected in [
        "records-system",
        "write",
        "2099-12-31",
        "active",
        "101001001/000001",
    ] {
        assert!(row.contains(expected), "{expected} missing from {row:?}");
    }
    assert!(!listed.contains(&secret[4..]), "{listed}");
    assert!(listed.contains("1 token(s)"), "{listed}");

    ok(&["token", "revoke", "--node", &district, &id]);
    let listed = ok(&["token", "list", "--node", &district]);
    assert!(
        listed
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap()
            .contains("revoked 20"),
        "{listed}"
    );
    let err = fails(&["token", "revoke", "--node", &district, &id]);
    assert!(err.contains("already revoked"), "{err}");
    let err = fails(&["token", "revoke", "--node", &district, "0000000"]);
    assert!(err.contains("token list"), "{err}");

    // Only principals of this node, a day written as a day and not past, a known scope.
    let err = String::from_utf8_lossy(&create("zhao", "2099-12-31", &[]).stderr).to_string();
    assert!(err.contains("no principal zhao on this node"), "{err}");
    let err =
        String::from_utf8_lossy(&create("records-system", "31.12.2099", &[]).stderr).to_string();
    assert!(err.contains("write YYYY-MM-DD"), "{err}");
    let err =
        String::from_utf8_lossy(&create("records-system", "2000-01-01", &[]).stderr).to_string();
    assert!(err.contains("already past"), "{err}");
    let out = create("records-system", "2099-12-31", &["--scope", "owner"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("read, write or admin"),
        "{err}"
    );

    // A write token names what it writes; the administrator's token names no principal.
    let out = create("records-system", "2099-12-31", &["--scope", "write"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("--catalog CODE"),
        "{err}"
    );
    let out = create("records-system", "2099-12-31", &["--scope", "admin"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("leave out --principal"),
        "{err}"
    );
    let admin = ok(&[
        "token",
        "create",
        "--node",
        &district,
        "--scope",
        "admin",
        "--expires",
        "2099-12-31",
    ]);
    assert!(
        admin.contains("for the administrator of 420502, scope admin,"),
        "{admin}"
    );
    let listed = ok(&["token", "list", "--node", &district]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("(administrator)") && l.contains("every catalog")),
        "{listed}"
    );

    // Removing the principal revokes its tokens: a later principal of the same name starts clean.
    create("records-system", "2099-12-31", &[]);
    let removed = ok(&["principal", "remove", "--node", &district, "records-system"]);
    assert!(removed.contains("revoked its 1 API token(s)"), "{removed}");
    let listed = ok(&["token", "list", "--node", &district]);
    let active: Vec<&str> = listed.lines().filter(|l| l.contains("active")).collect();
    assert!(
        active.len() == 1 && active[0].contains("(administrator)"),
        "{listed}"
    );
}

/// The large-record case (`node/sandbox/tests/fixtures/grpc-large-batch/`): buildings of about
/// 120 kB, as JSON lines, numbered from `first`.
fn write_big_buildings(path: &Path, first: usize, count: usize) {
    let mut text = String::new();
    for n in first..first + count {
        let record = serde_json::json!({
            "building_code": format!("QA-HUGE-{n:04}"), "community_code": "420502002001",
            "building_name": "测试楼", "address": "测试路1号", "floors": 6,
            "notes": "备".repeat(20_000), "notes2": "注".repeat(20_000),
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn large_records_import_with_the_default_settings_and_a_batch_that_cannot_fit_is_refused_first() {
    const BIG: &str = "103001001/000099";
    let root = tempfile::tempdir().unwrap();
    let d = |p: &str| root.path().join(p).to_str().unwrap().to_owned();
    ok(&["ca", "init", "--dir", &d("ca")]);
    let street = init_unit(root.path(), "420502001", "street", Some("420502"));
    let _server = serve(Path::new(&street));
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sandbox/tests/fixtures/grpc-large-batch/catalog.json");
    ok(&[
        "catalog",
        "add",
        "--node",
        &street,
        catalog.to_str().unwrap(),
    ]);
    let count = || {
        let listing = ok(&["catalog", "list", "--node", &street]);
        let line = listing
            .lines()
            .find(|l| l.contains(BIG))
            .unwrap()
            .to_owned();
        line.split_whitespace().nth(4).unwrap().to_owned()
    };
    let import = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "records",
            "import",
            "--node",
            &street,
            "--catalog",
            BIG,
            file,
        ];
        args.extend(extra);
        tierlink(&args)
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();

    // 600 records: 72 MB, over one message.
    let big = d("huge-records.jsonl");
    write_big_buildings(Path::new(&big), 0, 600);
    let refused = import(&big, &["--batch-size", "600"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "huge-records.jsonl: nothing was written: a batch of records 1–600 (lines 1–600) takes 72.0 MB, over the 64 MiB a message may carry: use --batch-size 558 or less, or leave --batch-size out to cut batches by size"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(count(), "0");

    let out = ok(&[
        "records",
        "import",
        "--node",
        &street,
        "--catalog",
        BIG,
        &big,
    ]);
    assert!(out.contains("  34/600 records written"), "{out}");
    assert!(
        out.contains("wrote 600 records to 103001001/000099"),
        "{out}"
    );
    assert_eq!(count(), "600");

    let export = d("big.tlb");
    let out = ok(&[
        "records",
        "query",
        "--node",
        &street,
        "--catalog",
        BIG,
        "--out",
        &export,
    ]);
    assert!(
        out.contains("verified: 600 records of 103001001/000099 in 18 batches"),
        "{out}"
    );
    let out = ok(&["verify", &export, "--ca", &d("ca/ca.crt")]);
    assert!(out.contains("OK — 600 records"), "{out}");

    // A record longer than its catalog allows is named, on every write path, and nothing of
    // its file is written.
    let over = d("over.jsonl");
    write_big_buildings(Path::new(&over), 600, 3);
    let text = std::fs::read_to_string(&over).unwrap();
    let long = text.replacen(&"备".repeat(20_000), &"备".repeat(20_001), 2);
    std::fs::write(&over, &long).unwrap();
    let over_length =
        "notes: is 20,001 characters long, over the item's length of 20,000 characters";
    let err = fails(&[
        "records",
        "import",
        "--node",
        &street,
        "--catalog",
        BIG,
        &over,
    ]);
    assert!(
        err.contains(&format!("line 1: {over_length}")) && err.contains("line 2: notes: "),
        "{err}"
    );
    assert!(
        err.contains("nothing was written: 2 records are rejected"),
        "{err}"
    );
    let first = long.lines().next().unwrap();
    let err = fails(&["records", "put", "--node", &street, "--catalog", BIG, first]);
    assert!(
        err.contains(&format!(r#"line 1 (key "QA-HUGE-0600"): {over_length}"#)),
        "{err}"
    );
    assert_eq!(count(), "600");

    // A read that fails leaves no file behind.
    let failed = d("failed.tlb");
    fails(&[
        "records",
        "query",
        "--node",
        &street,
        "--catalog",
        "103001001/000042",
        "--out",
        &failed,
    ]);
    let left: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("failed"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
