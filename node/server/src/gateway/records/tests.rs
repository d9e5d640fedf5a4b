// The form a read is answered in, by the Accept header.

use axum::http::{HeaderMap, HeaderValue, header};

use super::{Form, form};

fn asked(accept: &str) -> Option<Form> {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
    form(&headers).ok()
}

#[test]
fn accept_is_read_by_quality_and_then_order() {
    assert_eq!(form(&HeaderMap::new()).ok(), Some(Form::Json));
    assert_eq!(asked(""), Some(Form::Json));
    assert_eq!(asked("application/x-ndjson"), Some(Form::Ndjson));
    assert_eq!(
        asked("application/x-tierlink-batches, application/json"),
        Some(Form::Batches)
    );
    // Quality decides before order; q=0 refuses a form.
    assert_eq!(
        asked("application/x-tierlink-batches;q=0.1, application/json;q=0.9"),
        Some(Form::Json)
    );
    assert_eq!(asked("application/x-ndjson;q=0"), None);
    assert_eq!(
        asked("application/x-ndjson;q=0, */*;q=0.5"),
        Some(Form::Json)
    );
    assert_eq!(asked("text/html"), None);
    // The most specific range decides: a refused JSON stays refused under a wildcard.
    assert_eq!(asked("application/json;q=0, */*"), Some(Form::Ndjson));
    assert_eq!(asked("*/*, application/json;q=0"), Some(Form::Ndjson));
    assert_eq!(
        asked("application/json;q=0, application/x-ndjson;q=0, */*"),
        Some(Form::Batches)
    );
    assert_eq!(
        asked(
            "application/json;q=0, application/x-ndjson;q=0, application/x-tierlink-batches;q=0, */*"
        ),
        None
    );
    assert_eq!(asked("application/*;q=0, */*"), None);
    // A wildcard ranks every form alike: JSON first; a named form outranks a wildcard.
    assert_eq!(asked("*/*"), Some(Form::Json));
    assert_eq!(asked("*/*, application/x-ndjson"), Some(Form::Ndjson));
    // `q` is read in either case, and a weight above 1 is not one.
    assert_eq!(
        asked("application/json;Q=0.1, application/x-ndjson;Q=0.9"),
        Some(Form::Ndjson)
    );
    assert_eq!(
        asked("application/json;q=0, application/x-ndjson;q=2"),
        None
    );
    assert_eq!(asked(" , "), Some(Form::Json));
    assert_eq!(asked("a/b"), None);
    assert_eq!(asked("application/json;q=bad"), None);
}
