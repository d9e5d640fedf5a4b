// The tests of authentication itself.
#![allow(clippy::disallowed_methods)]

use super::*;

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
    assert_eq!(
        p.authenticate("li", &token, "420502/civil-affairs")
            .unwrap()
            .name,
        "li"
    );
    let err = p
        .authenticate("li", "tlk_wrong", "420502/civil-affairs")
        .unwrap_err();
    assert!(matches!(err, PrincipalError::NotAuthenticated(_)), "{err}");
    let err = p.authenticate("li", &token, "420500/analyst").unwrap_err();
    assert!(matches!(err, PrincipalError::RoleNotHeld { .. }), "{err}");
    assert!(matches!(
        p.authenticate("wang", &token, "420502/civil-affairs"),
        Err(PrincipalError::NotAuthenticated(_))
    ));
    let mut p = p;
    assert!(p.add("li", BTreeSet::new()).is_err());
    assert!(p.add("Li Wei", BTreeSet::new()).is_err());
    p.remove("li").unwrap();
    assert!(
        p.authenticate("li", &token, "420502/civil-affairs")
            .is_err()
    );
}
