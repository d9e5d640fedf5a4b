use super::*;

#[test]
fn the_example_host_configurations_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/hosts");
    for (file, tier) in [
        ("city.toml", "city"),
        ("district.toml", "district"),
        ("street.toml", "street"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let config: NodeConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        config
            .node
            .validate()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.node.tier.as_str(), tier);
        assert!(!config.peers.is_empty(), "{file}");
    }
}

#[test]
fn unknown_peers_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        include_str!("../../../../ops/hosts/street.toml"),
    )
    .unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    assert!(node.endpoint_of(&"420502".parse().unwrap()).is_ok());
    let err = node.endpoint_of(&"420500".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("has no peer 420500"), "{err}");
    let err = node.credentials().err().unwrap();
    assert!(err.to_string().contains("ca.crt"), "{err}");

    std::fs::write(dir.path().join(CONFIG_FILE), "[node]\ncode = \"42\"\n").unwrap();
    let err = NodeDir::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("node.toml"), "{err}");
}

#[test]
fn the_batch_size_in_bytes_is_bounded_by_the_message_limit() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    std::fs::write(dir.path().join(CONFIG_FILE), street).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    assert_eq!(node.config.exchange.batch_bytes, 4 << 20);

    let with = |bytes: usize| format!("{street}\n[exchange]\nbatch_bytes = {bytes}\n");
    std::fs::write(dir.path().join(CONFIG_FILE), with(1 << 20)).unwrap();
    assert_eq!(
        NodeDir::load(dir.path())
            .unwrap()
            .config
            .exchange
            .batch_bytes,
        1 << 20
    );
    for bad in [0, 1000, 64 << 20] {
        std::fs::write(dir.path().join(CONFIG_FILE), with(bad)).unwrap();
        let err = NodeDir::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("node.toml")
                && err.contains(&format!(
                    "[exchange] batch_bytes = {bad} is outside 65536..=33554432"
                )),
            "{err}"
        );
    }
}

#[test]
fn limits_default_when_left_out_and_a_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    std::fs::write(dir.path().join(CONFIG_FILE), street).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    assert_eq!(node.config.limits, LimitSettings::default());

    let partial = format!("{street}\n[limits]\nreads_per_caller = 8\n");
    std::fs::write(dir.path().join(CONFIG_FILE), partial).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    assert_eq!(node.config.limits.reads_per_caller, 8);
    assert_eq!(node.config.limits.reads_per_node, 256);

    let zero = format!("{street}\n[limits]\nread_workers = 0\n");
    std::fs::write(dir.path().join(CONFIG_FILE), zero).unwrap();
    let err = NodeDir::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("read_workers is 0"), "{err}");

    assert_eq!(node.config.limits.token_guesses_per_minute, 10);
    let zero = format!("{street}\n[limits]\ntoken_guesses_per_minute = 0\n");
    std::fs::write(dir.path().join(CONFIG_FILE), zero).unwrap();
    let err = NodeDir::load(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("token_guesses_per_minute is 0"),
        "{err}"
    );
}

#[test]
fn directory_timings_raft_cannot_keep_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    let with = |timings: &str| format!("{street}\n[directory]\n{timings}\n");
    let load = |timings: &str| {
        std::fs::write(dir.path().join(CONFIG_FILE), with(timings)).unwrap();
        NodeDir::load(dir.path()).map(|node| node.config.directory)
    };
    let kept = load("heartbeat_ms = 50\nelection_timeout_ms = 300").unwrap();
    assert_eq!((kept.heartbeat_ms, kept.election_timeout_ms), (50, 300));
    let err = load("heartbeat_ms = 0").unwrap_err().to_string();
    assert!(err.contains("heartbeat_ms is 0"), "{err}");
    let err = load("election_timeout_ms = 18446744073709551615")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is over 60000 (a minute)"), "{err}");
    for timings in ["election_timeout_ms = 150", "heartbeat_ms = 2000"] {
        let err = load(timings).unwrap_err().to_string();
        assert!(
            err.contains("node.toml") && err.contains("is not longer than heartbeat_ms"),
            "{timings}: {err}"
        );
    }
}

#[test]
fn a_files_section_naming_some_paths_keeps_the_defaults_of_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    let files = street.find("[files]").unwrap();
    let peers = street.find("[[peer]]").unwrap();
    let partial = format!(
        "{}[files]\ndata = \"store\"\n\n{}",
        &street[..files],
        &street[peers..]
    );
    std::fs::write(dir.path().join(CONFIG_FILE), partial).unwrap();
    let files = NodeDir::load(dir.path()).unwrap().config.files;
    assert_eq!(files.data, PathBuf::from("store"));
    assert_eq!(files.tls_key, Files::default().tls_key);
    assert_eq!(files.ca, Files::default().ca);
}

#[test]
fn a_store_cache_or_read_workers_no_machine_has_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    let load = |extra: &str| {
        std::fs::write(dir.path().join(CONFIG_FILE), format!("{street}\n{extra}\n")).unwrap();
        NodeDir::load(dir.path())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    for cache in [0, MAX_STORE_CACHE_MB + 1, u64::MAX] {
        let err = load(&format!("[store]\ncache_mb = {cache}")).unwrap_err();
        assert!(
            err.contains(&format!("[store] cache_mb = {cache} is outside 1..=")),
            "{err}"
        );
    }
    load(&format!("[store]\ncache_mb = {MAX_STORE_CACHE_MB}")).unwrap();
    let err = load("[limits]\nread_workers = 4294967295").unwrap_err();
    assert!(
        err.contains("read_workers = 4294967295 is over 1024"),
        "{err}"
    );
    load("[limits]\nread_workers = 1024").unwrap();
}

#[test]
fn the_gateway_is_optional_and_its_limits_positive() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    std::fs::write(dir.path().join(CONFIG_FILE), street).unwrap();
    assert_eq!(NodeDir::load(dir.path()).unwrap().config.gateway, None);

    let with = |extra: &str| format!("{street}\n[gateway]\nlisten = \"127.0.0.1:8443\"\n{extra}");
    std::fs::write(dir.path().join(CONFIG_FILE), with("")).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    assert_eq!(
        node.config.gateway,
        Some(GatewaySettings::on("127.0.0.1:8443".parse().unwrap()))
    );
    node.save().unwrap();
    let again = NodeDir::load(dir.path()).unwrap();
    assert_eq!(again.config.gateway, node.config.gateway);

    for name in [
        "body_bytes",
        "body_idle_ms",
        "request_ms",
        "connections_per_source",
        "connections",
        "writes",
    ] {
        let zero = format!("{name} = 0\n");
        std::fs::write(dir.path().join(CONFIG_FILE), with(&zero)).unwrap();
        let err = NodeDir::load(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&format!("[gateway] {name} is 0")),
            "{err}"
        );
    }
    let set = "connections_per_source = 3\nwrites = 1\n";
    std::fs::write(dir.path().join(CONFIG_FILE), with(set)).unwrap();
    let gateway = NodeDir::load(dir.path()).unwrap().config.gateway.unwrap();
    assert_eq!(
        (
            gateway.connections_per_source,
            gateway.writes,
            gateway.connections
        ),
        (3, 1, 1024)
    );
}

#[test]
fn cases_default_when_left_out_and_load_their_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let street = include_str!("../../../../ops/hosts/street.toml");
    std::fs::write(dir.path().join(CONFIG_FILE), street).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    let cases = &node.config.cases;
    assert_eq!(*cases, CaseSettings::default());
    assert_eq!(
        (cases.overdue, cases.check_ms, cases.deadlines.own_unit),
        (OverdueAction::Warn, 60_000, 1)
    );
    let calendar = cases.load_calendar(dir.path()).unwrap();
    assert!(calendar.covers(2026) && !calendar.covers(2027));
    node.save().unwrap();
    let saved = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
    assert!(
        !saved.contains("[cases"),
        "defaults are not written: {saved}"
    );

    let set = format!(
        "{street}\n[cases]\ncalendar = \"calendar\"\noverdue = \"escalate\"\n\n[cases.deadlines]\nverification = 10\n"
    );
    std::fs::write(dir.path().join(CONFIG_FILE), set).unwrap();
    let node = NodeDir::load(dir.path()).unwrap();
    let cases = &node.config.cases;
    assert_eq!(cases.overdue, OverdueAction::Escalate);
    assert_eq!(
        (cases.deadlines.verification, cases.deadlines.escalated),
        (10, 3)
    );
    // The directory is the node directory's `calendar/`: missing, it is named.
    let err = cases.load_calendar(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&dir.path().join("calendar").display().to_string()),
        "{err}"
    );
    std::fs::create_dir(dir.path().join("calendar")).unwrap();
    std::fs::write(
        dir.path().join("calendar/2027.toml"),
        "year = 2027\nzone = \"+08:00\"\nholidays = [\"2027-01-01\"]\n",
    )
    .unwrap();
    let calendar = cases.load_calendar(dir.path()).unwrap();
    assert!(calendar.covers(2027));
    node.save().unwrap();
    assert_eq!(NodeDir::load(dir.path()).unwrap().config.cases, *cases);

    for (wrong, expect) in [
        ("[cases]\ncheck_ms = 0\n", "[cases] check_ms is 0"),
        (
            "[cases]\noverdue = \"ignore\"\n",
            "unknown variant `ignore`",
        ),
        (
            "[cases.deadlines]\nown_units = 1\n",
            "unknown field `own_units`",
        ),
    ] {
        std::fs::write(dir.path().join(CONFIG_FILE), format!("{street}\n{wrong}")).unwrap();
        let err = NodeDir::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
}
