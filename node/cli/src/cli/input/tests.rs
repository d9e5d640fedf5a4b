use super::*;

#[test]
fn rejects_go_beside_the_file() {
    let csv = default_rejects(Path::new("/data/export.csv"), Format::Csv);
    assert_eq!(csv, Path::new("/data/export.rejects.csv"));
    let jsonl = default_rejects(Path::new("in.jsonl"), Format::JsonLines);
    assert_eq!(jsonl, Path::new("in.rejects.jsonl"));
}

#[test]
fn json_arguments_name_their_position() {
    let err = from_json_lines("argument", [(2, "{\"a\": [1]}")].into_iter()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("argument: line 2: a: values must be"),
        "{err}"
    );
}
