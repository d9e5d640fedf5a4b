use super::*;

#[test]
fn every_tierlink_method_has_its_rule() {
    let own = |what| Access::OwnNode(what);
    for (path, rule) in [
        ("/tierlink.v1.Exchange/Query", Access::Member),
        ("/tierlink.v1.Exchange/History", Access::Member),
        ("/tierlink.v1.Exchange/ListCatalogs", Access::Member),
        ("/tierlink.v1.Exchange/GetCatalog", Access::Member),
        ("/tierlink.v1.Exchange/PutCatalog", own("publish catalogs")),
        ("/tierlink.v1.Exchange/PutRecords", own("write records")),
        ("/tierlink.v1.Directory/Found", own("found the directory")),
        (
            "/tierlink.v1.Directory/Propose",
            own("issue directory changes"),
        ),
        (
            "/tierlink.v1.Directory/Publish",
            own("publish catalogs in the directory"),
        ),
        ("/tierlink.v1.Directory/Explain", own("explain decisions")),
        ("/tierlink.v1.Directory/Submit", Access::Certified),
        ("/tierlink.v1.Directory/Members", Access::Certified),
        ("/tierlink.v1.Directory/Status", Access::Certified),
        ("/tierlink.v1.Directory/Catalogs", Access::Registered),
        ("/tierlink.v1.Directory/Policies", Access::Registered),
        ("/tierlink.v1.Federation/Vote", Access::Certified),
        ("/tierlink.v1.Audit/Entries", own("read the audit")),
        ("/tierlink.v1.Cases/Deliver", Access::Member),
        ("/tierlink.v1.Cases/Act", own("act on cases")),
        ("/tierlink.v1.Cases/Figures", own("act on cases")),
        ("/tierlink.v1.Audit/Verify", own("read the audit")),
        ("/tierlink.v1.Audit/Anchor", own("read the audit")),
        ("/tierlink.v1.Backup/Take", own("take backups")),
        ("/grpc.health.v1.Health/Check", Access::Open),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            Access::Open,
        ),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            Access::Open,
        ),
        // A service with no rule of its own serves only the node itself.
        (
            "/tierlink.v1.Feed/Subscribe",
            own("call a method without an admission rule"),
        ),
        ("//tierlink.v1.Audit/Entries", own("read the audit")),
    ] {
        assert_eq!(access(path), rule, "{path}");
    }
}

#[test]
fn a_call_without_a_client_certificate_is_not_admitted() {
    let layer = AdmissionLayer::new(
        "420502001".parse().unwrap(),
        "00".repeat(32),
        Arc::new(tierlink_core::members::MemberList::default()),
    );
    let extensions = http::Extensions::new();
    let refused = layer
        .admit("/tierlink.v1.Exchange/Query", &extensions)
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(refused.message().contains("federation CA"), "{refused:?}");
    assert!(
        layer
            .admit("/grpc.health.v1.Health/Check", &extensions)
            .unwrap()
            .is_none()
    );
}
