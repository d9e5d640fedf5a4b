use std::time::{Duration, SystemTime};

use super::deliver::{Receivers, hmac_signature, next_delay, retry_after};

#[test]
fn a_url_is_allowed_only_under_a_configured_receiver() {
    let receivers = Receivers::parse(&[
        "https://erp.example.gov.cn:8443/hooks/".into(),
        "http://127.0.0.1:9000/in".into(),
    ])
    .unwrap();
    for allowed in [
        "https://erp.example.gov.cn:8443/hooks/",
        "https://ERP.example.gov.cn:8443/hooks/residents",
        "http://127.0.0.1:9000/in",
        "http://127.0.0.1:9000/in/street",
    ] {
        receivers.check(allowed).unwrap();
    }
    for refused in [
        "http://erp.example.gov.cn:8443/hooks/",
        "https://erp.example.gov.cn/hooks/",
        "https://erp.example.gov.cn.evil.example:8443/hooks/",
        "https://erp.example.gov.cn:8443/other",
        "http://127.0.0.1:9000/inbox",
        "http://127.0.0.1:9001/in",
        "http://user:pw@127.0.0.1:9000/in",
        "not a url",
    ] {
        let e = receivers.check(refused).unwrap_err();
        assert!(
            e.contains("[webhooks] receivers")
                || e.contains("not a URL")
                || e.contains("carries a user name or password"),
            "{e}"
        );
    }
    let none = Receivers::parse(&[]).unwrap();
    assert!(
        none.check("https://erp.example.gov.cn/")
            .unwrap_err()
            .contains("allows none")
    );
    assert!(Receivers::parse(&["ftp://x/".into()]).is_err());
}

#[test]
fn the_hmac_signature_is_the_specifications() {
    // The test vector of the Standard Webhooks reference libraries.
    let content = r#"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}"#;
    assert_eq!(
        hmac_signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", content).as_deref(),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    );
    assert_eq!(
        hmac_signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", content),
        None
    );
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_717);
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    // 1994-11-06 08:49:37 UTC is 784111777: a minute after `now`, in each of the three forms.
    for date in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            retry_after(date, now),
            Some(Duration::from_secs(60)),
            "{date}"
        );
    }
    assert_eq!(
        retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(retry_after("soon", now), None);
    assert_eq!(retry_after("-5", now), None);
}

#[test]
fn a_retry_waits_for_the_next_step_or_a_longer_retry_after_up_to_the_longest_step() {
    let ms = Duration::from_millis;
    let schedule = [ms(0), ms(50), ms(400), ms(100)];
    assert_eq!(next_delay(&schedule, 1, None), Some(ms(50)));
    assert_eq!(next_delay(&schedule, 1, Some(ms(10))), Some(ms(50)));
    assert_eq!(next_delay(&schedule, 1, Some(ms(300))), Some(ms(300)));
    assert_eq!(next_delay(&schedule, 3, Some(ms(9_000))), Some(ms(400)));
    assert_eq!(next_delay(&schedule, 4, None), None);
}
