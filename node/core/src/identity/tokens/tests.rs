// API tokens: their form, what the file keeps, and when a token works.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;

use chrono::TimeZone;

use super::*;
use crate::identity::{PrincipalError, PrincipalFiles};

const ROLE: &str = "420502/civil-affairs";

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn reader(principal: &str) -> Issue {
    Issue::new(principal, Scope::Read, day(2026, 12, 31))
}

/// A node directory's two files, with principals `li` and `wang`; li's personal token.
fn node(dir: &Path) -> (PrincipalFiles, String) {
    let files = PrincipalFiles {
        principals: dir.join("principals.toml"),
        tokens: dir.join("tokens.toml"),
    };
    let mut principals = Principals::default();
    let personal = principals
        .add("li", BTreeSet::from([ROLE.to_string()]))
        .unwrap();
    principals
        .add("wang", BTreeSet::from([ROLE.to_string()]))
        .unwrap();
    principals.save(&files.principals).unwrap();
    (files, personal)
}

fn issue(files: &PrincipalFiles, issue: Issue, now: DateTime<Utc>) -> IssuedToken {
    let principals = Principals::load(&files.principals).unwrap();
    let mut tokens = ApiTokens::load(&files.tokens).unwrap();
    let issued = tokens.create(&principals, issue, now).unwrap();
    tokens.save(&files.tokens).unwrap();
    issued
}

#[test]
fn a_token_is_prefixed_random_and_checksummed_so_a_scanner_knows_it_and_a_typo_is_refused_offline()
{
    // The checksum as a scanner computes it from the documented format (CRC32/IEEE, base62).
    check_format("tlk_0123456789abcdefghijABCDEFGHIJkl09D8kt").unwrap();
    let token = new_secret().unwrap();
    assert_eq!(token.len(), 4 + 32 + 6, "{token}");
    assert!(token.starts_with("tlk_"));
    assert!(token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    check_format(&token).unwrap();
    assert_ne!(token, new_secret().unwrap());

    // One character mistyped, anywhere: the checksum says so.
    for i in 4..token.len() {
        let mut typo = token.clone().into_bytes();
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(
            matches!(check_format(&typo), Err(TokenError::Checksum)),
            "{typo}"
        );
    }
    for (bad, why) in [
        (&token[..token.len() - 1], "not as long"),
        (&token[4..], "start with tlk_"),
        ("tlk_wrong", "not as long"),
        (&format!("{}-{}", &token[..20], &token[21..]), "other than"),
    ] {
        let err = check_format(bad).unwrap_err();
        assert!(
            matches!(err, TokenError::Malformed(_)) && err.to_string().contains(why),
            "{bad}: {err}"
        );
        assert!(
            !err.to_string().contains(bad),
            "a refusal never echoes the token: {err}"
        );
    }
    // Personal tokens issued before tokens had a checksum keep their form.
    check_format(&format!("tlk_{}", "0f".repeat(32))).unwrap();
}

#[test]
fn tokens_are_kept_as_hashes_in_a_private_file_and_work_through_their_expiry_day_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = node(dir.path());
    let created = at(2026, 5, 1, 8, 0, 0);
    let issued = issue(&files, reader("li"), created);
    assert_eq!(issued.id.len(), 8, "{}", issued.id);

    let text = std::fs::read_to_string(&files.tokens).unwrap();
    assert!(!text.contains(&issued.secret), "the secret is never stored");
    assert!(text.contains(&hash(&issued.secret)), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.tokens)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut tokens = ApiTokens::load(&files.tokens).unwrap();
    let holder = tokens.check(&issued.secret, created).unwrap();
    assert_eq!(
        holder,
        TokenHolder {
            id: issued.id.clone(),
            principal: Some("li".into()),
            scope: Scope::Read,
            catalogs: Vec::new(),
            expires: day(2026, 12, 31),
        }
    );
    holder.permits(Scope::Read).unwrap();
    let err = holder.permits(Scope::Write).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Scope {
                held: Scope::Read,
                needed: Scope::Write
            }
        ),
        "{err}"
    );

    // The whole expiry day in UTC, not a second more.
    tokens
        .check(&issued.secret, at(2026, 12, 31, 23, 59, 59))
        .unwrap();
    let err = tokens
        .check(&issued.secret, at(2027, 1, 1, 0, 0, 0))
        .unwrap_err();
    assert!(
        matches!(err, TokenError::Expired { day: d } if d == day(2026, 12, 31)),
        "{err}"
    );
    assert!(
        err.to_string().contains("expired at the end of 2026-12-31"),
        "{err}"
    );

    // Revoked: at once, told apart from a token never issued, and kept in the list.
    let revoked_at = at(2026, 6, 1, 12, 0, 0);
    tokens.revoke(&issued.id, revoked_at).unwrap();
    tokens.save(&files.tokens).unwrap();
    let tokens = ApiTokens::load(&files.tokens).unwrap();
    let err = tokens.check(&issued.secret, revoked_at).unwrap_err();
    assert!(
        matches!(err, TokenError::Revoked { at } if at == revoked_at),
        "{err}"
    );
    let listed = tokens.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state(revoked_at), TokenState::Revoked);
    assert_eq!(listed[0].created, created);
    assert!(matches!(
        tokens.check(&new_secret().unwrap(), created),
        Err(TokenError::Unknown)
    ));

    let mut tokens = tokens;
    assert!(matches!(
        tokens.revoke(&issued.id, created),
        Err(TokenError::AlreadyRevoked { at, .. }) if at == revoked_at
    ));
    assert!(matches!(
        tokens.revoke("00000000", created),
        Err(TokenError::UnknownId(_))
    ));
}

#[test]
fn a_token_is_issued_only_to_a_principal_of_this_node_and_for_a_day_not_yet_past() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = node(dir.path());
    let principals = Principals::load(&files.principals).unwrap();
    let mut tokens = ApiTokens::default();
    let now = at(2026, 5, 1, 8, 0, 0);
    let err = tokens.create(&principals, reader("zhao"), now).unwrap_err();
    assert!(matches!(err, TokenError::UnknownPrincipal(_)), "{err}");
    let err = tokens
        .create(
            &principals,
            Issue::new("li", Scope::Read, day(2026, 4, 30)),
            now,
        )
        .unwrap_err();
    assert!(err.to_string().contains("already past"), "{err}");
    // Today is still a day the token works.
    tokens
        .create(
            &principals,
            Issue::new("li", Scope::Read, day(2026, 5, 1)),
            now,
        )
        .unwrap();
    assert_eq!(tokens.list().len(), 1);
}

#[test]
fn an_admin_token_is_the_administrators_and_a_write_token_names_the_catalogs_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = node(dir.path());
    let principals = Principals::load(&files.principals).unwrap();
    let mut tokens = ApiTokens::default();
    let now = at(2026, 5, 1, 8, 0, 0);
    let expires = day(2026, 12, 31);
    let refused = |tokens: &mut ApiTokens, issue: Issue, says: &str| {
        let err = tokens.create(&principals, issue, now).unwrap_err();
        assert!(matches!(err, TokenError::Invalid(_)), "{err}");
        assert!(err.to_string().contains(says), "{says}: {err}");
    };
    // A principal never holds the administrator's scope; the administrator is no principal.
    refused(
        &mut tokens,
        Issue::new("li", Scope::Admin, expires),
        "leave out --principal",
    );
    refused(
        &mut tokens,
        Issue {
            principal: None,
            ..reader("li")
        },
        "name it with --principal",
    );
    // A write token names what it writes; the others name nothing.
    refused(
        &mut tokens,
        Issue::new("li", Scope::Write, expires),
        "--catalog CODE",
    );
    refused(
        &mut tokens,
        Issue {
            catalogs: vec!["101001001/000001".into()],
            ..reader("li")
        },
        "use --scope write",
    );
    refused(
        &mut tokens,
        Issue {
            catalogs: vec!["101001001/000001".into()],
            ..Issue::administrator(expires)
        },
        "writes every catalog",
    );
    for bad in ["foo", "../../x", "101001001/00001"] {
        refused(
            &mut tokens,
            Issue::writer("li", &[bad], expires),
            "is not a catalog's resource code",
        );
    }
    assert!(tokens.list().is_empty(), "nothing refused was issued");

    let writer = tokens
        .create(
            &principals,
            Issue::writer("li", &["101001001/000001", "103001001/000001"], expires),
            now,
        )
        .unwrap();
    let admin = tokens
        .create(&principals, Issue::administrator(expires), now)
        .unwrap();
    tokens.save(&files.tokens).unwrap();
    let tokens = ApiTokens::load(&files.tokens).unwrap();

    let writer = tokens.check(&writer.secret, now).unwrap();
    writer.may_write("103001001/000001").unwrap();
    let err = writer.may_write("301001001/000001").unwrap_err();
    assert!(matches!(err, TokenError::Catalog { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "writes only catalogs 101001001/000001, 103001001/000001 and not catalog 301001001/000001"
        ),
        "{err}"
    );
    assert_eq!(writer.reader().unwrap(), "li");

    let admin_secret = admin.secret;
    let admin = tokens.check(&admin_secret, now).unwrap();
    admin.may_write("301001001/000001").unwrap();
    admin.permits(Scope::Admin).unwrap();
    assert!(matches!(admin.reader(), Err(TokenError::Administrator)));
    // Nor does it stand in for any principal's credential.
    let err = files
        .authenticate("li", &admin_secret, ROLE, Scope::Read, now)
        .unwrap_err();
    assert!(matches!(err, PrincipalError::NotAuthenticated(_)), "{err}");
    let reader = issue(&files, reader("wang"), now);
    let err = ApiTokens::load(&files.tokens)
        .unwrap()
        .check(&reader.secret, now)
        .unwrap()
        .may_write("101001001/000001")
        .unwrap_err();
    assert!(matches!(err, TokenError::Scope { .. }), "{err}");
}

#[test]
fn a_node_never_accepts_another_nodes_tokens_nor_one_principals_token_for_another() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Two nodes, each with principals li and wang.
    let (a, _) = node(a_dir.path());
    let (b, _) = node(b_dir.path());
    let now = at(2026, 5, 1, 8, 0, 0);
    let li_at_a = issue(&a, reader("li"), now);
    issue(&b, reader("li"), now);

    a.authenticate("li", &li_at_a.secret, ROLE, Scope::Read, now)
        .unwrap();
    // Node B has its own li, and its own tokens file: A's token is not among them.
    let err = b
        .authenticate("li", &li_at_a.secret, ROLE, Scope::Read, now)
        .unwrap_err();
    assert!(matches!(err, PrincipalError::NotAuthenticated(_)), "{err}");
    assert!(matches!(
        ApiTokens::load(&b.tokens)
            .unwrap()
            .check(&li_at_a.secret, now),
        Err(TokenError::Unknown)
    ));
    // li's token is not wang's, and a name that does not exist reads the same as a wrong token.
    let wang = a
        .authenticate("wang", &li_at_a.secret, ROLE, Scope::Read, now)
        .unwrap_err();
    let ghost = a
        .authenticate("ghost", &li_at_a.secret, ROLE, Scope::Read, now)
        .unwrap_err();
    assert!(
        matches!(wang, PrincipalError::NotAuthenticated(_)),
        "{wang}"
    );
    assert_eq!(wang.to_string().replace("wang", "ghost"), ghost.to_string());
}

#[test]
fn a_credential_is_the_personal_token_or_an_api_token_whose_scope_allows_the_act() {
    let dir = tempfile::tempdir().unwrap();
    let (files, personal) = node(dir.path());
    let now = at(2026, 5, 1, 8, 0, 0);
    let read = issue(&files, reader("li"), now);
    let write = issue(
        &files,
        Issue::writer("li", &["101001001/000001"], day(2026, 12, 31)),
        now,
    );

    for token in [&personal, &read.secret, &write.secret] {
        let p = files
            .authenticate("li", token, ROLE, Scope::Read, now)
            .unwrap();
        assert_eq!(p.name, "li");
    }
    files
        .authenticate("li", &write.secret, ROLE, Scope::Write, now)
        .unwrap();
    let err = files
        .authenticate("li", &read.secret, ROLE, Scope::Write, now)
        .unwrap_err();
    assert!(
        matches!(err, PrincipalError::Token(TokenError::Scope { .. })),
        "{err}"
    );
    // The role is checked whichever token is given.
    let err = files
        .authenticate("li", &read.secret, "420500/analyst", Scope::Read, now)
        .unwrap_err();
    assert!(matches!(err, PrincipalError::RoleNotHeld { .. }), "{err}");
    // Expired and revoked tokens say so to their holder.
    let err = files
        .authenticate(
            "li",
            &read.secret,
            ROLE,
            Scope::Read,
            at(2027, 1, 1, 0, 0, 0),
        )
        .unwrap_err();
    assert!(
        matches!(err, PrincipalError::Token(TokenError::Expired { .. })),
        "{err}"
    );
    let mut tokens = ApiTokens::load(&files.tokens).unwrap();
    assert_eq!(tokens.revoke_principal("li", now), 2);
    tokens.save(&files.tokens).unwrap();
    let err = files
        .authenticate("li", &write.secret, ROLE, Scope::Read, now)
        .unwrap_err();
    assert!(
        matches!(err, PrincipalError::Token(TokenError::Revoked { .. })),
        "{err}"
    );
    // A typo is refused by its form before any lookup.
    let mut typo = personal.clone();
    typo.pop();
    typo.push(if personal.ends_with('a') { 'b' } else { 'a' });
    let err = files
        .authenticate("li", &typo, ROLE, Scope::Read, now)
        .unwrap_err();
    assert!(
        matches!(err, PrincipalError::Token(TokenError::Checksum)),
        "{err}"
    );
}

#[test]
fn administrators_issuing_at_once_each_keep_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = node(dir.path());
    let now = at(2026, 5, 1, 8, 0, 0);
    let issued: Vec<IssuedToken> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let principals = Principals::load(&files.principals).unwrap();
                    ApiTokens::update(&files.tokens, |tokens| {
                        tokens.create(&principals, reader("li"), now)
                    })
                    .unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let tokens = ApiTokens::load(&files.tokens).unwrap();
    assert_eq!(tokens.list().len(), 8);
    for token in &issued {
        tokens.check(&token.secret, now).unwrap();
    }
    // A change that fails writes nothing.
    let err = ApiTokens::update(&files.tokens, |tokens| tokens.revoke("00000000", now));
    assert!(matches!(err, Err(TokenError::UnknownId(_))));
    assert_eq!(ApiTokens::load(&files.tokens).unwrap().list().len(), 8);
}

#[test]
fn scopes_read_and_print_as_their_names_and_each_allows_the_ones_before_it() {
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
    }
    assert!(Scope::Admin.allows(Scope::Write) && Scope::Write.allows(Scope::Read));
    assert!(!Scope::Read.allows(Scope::Write) && !Scope::Write.allows(Scope::Admin));
    let err = "Read".parse::<Scope>().unwrap_err();
    assert!(err.contains("read, write or admin"), "{err}");
}

#[test]
fn each_kind_of_refusal_has_its_own_stable_name() {
    let now = at(2026, 5, 1, 8, 0, 0);
    let kinds: BTreeSet<&str> = [
        TokenError::File {
            path: "tokens.toml".into(),
            reason: String::new(),
        },
        TokenError::Malformed(""),
        TokenError::Checksum,
        TokenError::Unknown,
        TokenError::Expired {
            day: day(2026, 1, 1),
        },
        TokenError::Revoked { at: now },
        TokenError::Scope {
            held: Scope::Read,
            needed: Scope::Admin,
        },
        TokenError::Catalog {
            catalog: String::new(),
            writes: Vec::new(),
        },
        TokenError::Administrator,
        TokenError::UnknownPrincipal(String::new()),
        TokenError::UnknownId(String::new()),
        TokenError::AlreadyRevoked {
            id: String::new(),
            at: now,
        },
        TokenError::Invalid(String::new()),
    ]
    .iter()
    .map(TokenError::kind)
    .collect();
    assert_eq!(kinds.len(), 13);
}
