use serde_json::Value;

use super::document;

/// Every operation of the document with its path and method.
fn operations() -> Vec<(String, String, Value)> {
    let document = serde_json::to_value(document()).unwrap();
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    assert!(all.len() >= 10, "{} operations", all.len());
    all
}

/// The statuses an operation documents.
fn statuses(operation: &Value) -> Vec<&str> {
    operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn operations_document_the_refusals_every_such_operation_can_give() {
    for (path, method, operation) in operations() {
        let documented = statuses(&operation);
        let queried = operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        // A query string that does not parse, or names a parameter the operation does not
        // take, is refused with 400 before the handler runs.
        if queried {
            assert!(
                documented.contains(&"400"),
                "{method} {path}: {documented:?}"
            );
        }
        // A token is checked, and failed guesses limited, before anything else.
        if operation["security"].is_array() {
            for status in ["401", "429"] {
                assert!(
                    documented.contains(&status),
                    "{method} {path}: {documented:?}"
                );
            }
        }
    }
}

#[test]
fn every_documented_refusal_is_a_problem_document() {
    for (path, method, operation) in operations() {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if status.starts_with('2') {
                continue;
            }
            let media: Vec<&String> = response["content"].as_object().unwrap().keys().collect();
            assert_eq!(
                media,
                ["application/problem+json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                response["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/ProblemDocument",
                "{method} {path} {status}"
            );
        }
    }
}
