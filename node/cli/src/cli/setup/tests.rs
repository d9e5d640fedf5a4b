use super::endpoint_host;

#[test]
fn endpoint_hosts() {
    assert_eq!(
        endpoint_host("https://xiling.example.gov.cn:7443"),
        Some("xiling.example.gov.cn")
    );
    assert_eq!(endpoint_host("https://10.1.2.3:7443/"), Some("10.1.2.3"));
    assert_eq!(endpoint_host("https://[fd00::1]:7443"), Some("fd00::1"));
    assert_eq!(endpoint_host("https://host"), Some("host"));
    assert_eq!(endpoint_host("https://:7443"), None);
}
