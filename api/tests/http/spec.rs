//! The OpenAPI document says exactly what the server accepts: a generator
//! (scripts/fuzz) that follows it must never be refused for following it,
//! nor accepted for breaking it. These tests read the document only (the
//! one `/openapi.json` serves).

use api::document;
use serde_json::Value;
use shared::domain::IdempotencyKey;

/// The parameter `name` of `method path`.
fn parameter(spec: &Value, path: &str, method: &str, name: &str) -> Value {
    spec["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
        .clone()
}

#[test]
fn the_idempotency_key_header_declares_the_servers_rule() {
    let spec = document();
    let header = parameter(&spec, "/events/{id}/reserve", "post", "Idempotency-Key");
    let schema = &header["schema"];
    assert_eq!(schema["type"], "string", "a header is never null: {header}");
    assert_eq!(schema["minLength"], 1, "{header}");
    assert_eq!(schema["maxLength"], IdempotencyKey::MAX_LEN, "{header}");
    assert_eq!(schema["pattern"], "^[!-~]+$", "{header}");

    // What the pattern allows, the server takes: every visible ASCII
    // character, at both ends of the length range.
    let visible: String = ('!'..='~').collect();
    for key in [visible.as_str(), "!", &"~".repeat(IdempotencyKey::MAX_LEN)] {
        assert!(IdempotencyKey::parse(key).is_ok(), "{key:?}");
    }
}

#[test]
fn reservation_ids_are_declared_as_uuids() {
    let spec = document();
    for method in ["get", "delete"] {
        let id = parameter(&spec, "/reservations/{id}", method, "id");
        assert_eq!(id["schema"]["type"], "string", "{method}: {id}");
        assert_eq!(id["schema"]["format"], "uuid", "{method}: {id}");
    }
}

#[test]
fn operation_ids_are_unique() {
    let spec = document();
    let mut ids = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"].as_str();
            ids.push(id.unwrap_or_else(|| panic!("{method} {path} has no operationId")));
        }
    }
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicated operationIds among {ids:?}");
}

/// MySQL's DATETIME holds years 1000 to 9999, and the server refuses the
/// rest: the document says so.
#[test]
fn event_times_declare_their_years() {
    let spec = document();
    let event = &spec["components"]["schemas"]["NewEvent"]["properties"];
    for field in ["starts_at", "sale_opens_at", "sale_closes_at"] {
        assert_eq!(event[field]["format"], "date-time", "{field}");
        assert_eq!(event[field]["pattern"], "^[1-9][0-9]{3}-", "{field}");
    }
}

#[test]
fn the_live_stream_documents_its_events() {
    let spec = document();
    let content = &spec["paths"]["/events/{id}/live"]["get"]["responses"]["200"]["content"];
    let event = &content["text/event-stream"]["schema"];
    assert_eq!(event["properties"]["event"]["const"], "tickets", "{event}");
    let data = &event["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json", "{data}");
    let update = &data["contentSchema"];
    assert_eq!(update, &spec["components"]["schemas"]["LiveUpdate"]);
    for field in ["event_id", "name", "capacity", "tickets", "rate_per_sec"] {
        assert!(
            update["required"]
                .as_array()
                .is_some_and(|required| required.iter().any(|f| f == field)),
            "{field} is not required: {update}"
        );
    }
    let page = &spec["paths"]["/live/{id}"]["get"]["responses"]["200"]["content"];
    assert!(page["text/html"].is_object(), "{page}");
}
