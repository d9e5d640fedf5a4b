use super::*;

#[test]
fn json_lines_become_aligned_rows() {
    let text = "{\"a\": \"x\", \"b\": 2}\n\n{\"b\": true, \"c\": null}\n";
    let t = from_json_lines("f", text.lines().enumerate().map(|(n, l)| (n + 1, l))).unwrap();
    assert_eq!(t.columns, ["a", "b", "c"]);
    assert_eq!(t.rows, [vec!["x", "2", ""], vec!["", "true", ""]]);
    assert_eq!(t.lines, [1, 3]);
    let err = from_json_lines("f", [(4, "{\"a\": [1]}")].into_iter()).unwrap_err();
    assert!(
        err.to_string().starts_with("f:4: a: values must be"),
        "{err}"
    );
}

#[test]
fn csv_keeps_headers_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.csv");
    std::fs::write(&path, "\u{feff}building_code,floors\nB1,6\nB2,7\n").unwrap();
    let t = read_file(&path).unwrap();
    assert_eq!(t.columns, ["building_code", "floors"]);
    assert_eq!(t.rows, [vec!["B1", "6"], vec!["B2", "7"]]);
    assert_eq!(t.lines, [2, 3]);
    std::fs::write(&path, "a,b\n1,2,3\n").unwrap();
    assert!(
        read_file(&path)
            .unwrap_err()
            .to_string()
            .contains("b.csv:2")
    );
}
