// The tests of authentication itself.
#![allow(clippy::disallowed_methods)]

use super::*;

fn now() -> DateTime<Utc> {
    "2026-05-01T08:00:00Z".parse().unwrap()
}

#[test]
fn tokens_are_checked_against_their_hash_and_roles_against_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("principals.toml");
    let mut p = Principals::load(&path).unwrap();
    let token = p
        .add("li", BTreeSet::from(["420502/civil-affairs".to_string()]))
        .unwrap();
    p.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&token), "the token itself is never stored");
    let p = Principals::load(&path).unwrap();
    let none = ApiTokens::default();
    let wrong = tokens::new_secret().unwrap();
    assert_eq!(
        p.authenticate(
            &none,
            "li",
            &token,
            "420502/civil-affairs",
            Scope::Read,
            now()
        )
        .unwrap()
        .name,
        "li"
    );
    let err = p
        .authenticate(
            &none,
            "li",
            &wrong,
            "420502/civil-affairs",
            Scope::Read,
            now(),
        )
        .unwrap_err();
    assert!(matches!(err, PrincipalError::NotAuthenticated(_)), "{err}");
    let err = p
        .authenticate(&none, "li", &token, "420500/analyst", Scope::Read, now())
        .unwrap_err();
    assert!(matches!(err, PrincipalError::RoleNotHeld { .. }), "{err}");
    assert!(matches!(
        p.authenticate(
            &none,
            "wang",
            &token,
            "420502/civil-affairs",
            Scope::Read,
            now()
        ),
        Err(PrincipalError::NotAuthenticated(_))
    ));
    let mut p = p;
    assert!(p.add("li", BTreeSet::new()).is_err());
    assert!(p.add("Li Wei", BTreeSet::new()).is_err());
    p.remove("li").unwrap();
    assert!(
        p.authenticate(
            &none,
            "li",
            &token,
            "420502/civil-affairs",
            Scope::Read,
            now()
        )
        .is_err()
    );
}

#[test]
fn personal_tokens_issued_before_the_checksummed_form_keep_working() {
    let legacy = format!("tlk_{}", "3a".repeat(32));
    let p = Principals {
        principals: vec![Principal {
            name: "li".into(),
            roles: BTreeSet::from(["420502/civil-affairs".to_string()]),
            token_hash: tokens::hash(&legacy),
        }],
    };
    let none = ApiTokens::default();
    p.authenticate(
        &none,
        "li",
        &legacy,
        "420502/civil-affairs",
        Scope::Read,
        now(),
    )
    .unwrap();
    let other = format!("tlk_{}", "3b".repeat(32));
    assert!(matches!(
        p.authenticate(
            &none,
            "li",
            &other,
            "420502/civil-affairs",
            Scope::Read,
            now()
        ),
        Err(PrincipalError::NotAuthenticated(_))
    ));
}
