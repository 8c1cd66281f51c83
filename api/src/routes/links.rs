//! OpenAPI links: which answer feeds which request. They make the life of a
//! reservation explicit in the document (create an event, reserve in it,
//! poll the reservation, cancel it), for readers and for Schemathesis's
//! stateful phase (scripts/fuzz), which follows them with real ids instead
//! of random ones that would only ever meet 404.
//!
//! Written in one place because a link spans two routes, and added to the
//! document as JSON: utoipa 5's `Link` serializes its fields in snake case
//! (`operation_ref`), which no reader understands. They point at
//! operations by `operationRef` (a JSON pointer to the path), since utoipa
//! names operations after their handlers, which are not unique (`get`,
//! `create`).

use serde_json::{Value, json};

/// An operation: its method (lower case, as in the document) and path.
type Operation = (&'static str, &'static str);

/// One link: from the `status` answer of `from`, to `to`, whose `id` path
/// parameter is the answer's `field`.
struct Edge {
    from: Operation,
    status: &'static str,
    name: &'static str,
    to: Operation,
    field: &'static str,
    description: &'static str,
}

const EDGES: &[Edge] = {
    const EVENTS: &str = "/events";
    const RESERVE: &str = "/events/{id}/reserve";
    const RESERVATION: &str = "/reservations/{id}";
    &[
        Edge {
            from: ("post", EVENTS),
            status: "201",
            name: "GetEvent",
            to: ("get", "/events/{id}"),
            field: "id",
            description: "The event just created",
        },
        Edge {
            from: ("post", EVENTS),
            status: "201",
            name: "Reserve",
            to: ("post", RESERVE),
            field: "id",
            description: "Reserve tickets of the event just created",
        },
        Edge {
            from: ("post", EVENTS),
            status: "201",
            name: "GetTickets",
            to: ("get", "/events/{id}/tickets"),
            field: "id",
            description: "Tickets left in the event just created",
        },
        Edge {
            from: ("post", EVENTS),
            status: "201",
            name: "WatchEvent",
            to: ("get", "/events/{id}/live"),
            field: "id",
            description: "Tickets left and the sale's pace as they change",
        },
        Edge {
            from: ("post", EVENTS),
            status: "201",
            name: "OpenLivePage",
            to: ("get", "/live/{id}"),
            field: "id",
            description: "The live page of the event just created",
        },
        Edge {
            from: ("post", RESERVE),
            status: "200",
            name: "GetReservation",
            to: ("get", RESERVATION),
            field: "reservation_id",
            description: "The reservation's state",
        },
        Edge {
            from: ("post", RESERVE),
            status: "200",
            name: "CancelReservation",
            to: ("delete", RESERVATION),
            field: "reservation_id",
            description: "Cancel the reservation; its tickets go back",
        },
        Edge {
            from: ("post", RESERVE),
            status: "200",
            name: "ConfirmReservation",
            to: ("post", "/reservations/{id}/confirm"),
            field: "reservation_id",
            description: "Confirm a hold (a confirmed one answers as it is)",
        },
        Edge {
            from: ("post", RESERVE),
            status: "202",
            name: "PollReservation",
            to: ("get", RESERVATION),
            field: "reservation_id",
            description: "Poll until a worker decides it",
        },
        Edge {
            from: ("post", RESERVE),
            status: "202",
            name: "CancelReservation",
            to: ("delete", RESERVATION),
            field: "reservation_id",
            description: "Cancel it once it is confirmed (409 while pending)",
        },
        Edge {
            from: ("get", RESERVATION),
            status: "200",
            name: "CancelReservation",
            to: ("delete", RESERVATION),
            field: "reservation_id",
            description: "Cancel the reservation; its tickets go back",
        },
        Edge {
            from: ("delete", RESERVATION),
            status: "200",
            name: "GetReservation",
            to: ("get", RESERVATION),
            field: "reservation_id",
            description: "The cancelled reservation stays readable",
        },
    ]
};

/// Adds the links to `document` (the OpenAPI document as JSON).
pub fn add(document: &mut Value) {
    for edge in EDGES {
        let answer = format!("{}/responses/{}", &pointer(&edge.from)[1..], edge.status);
        // A missing route or answer is a mistake in EDGES, caught by the
        // tests below, never by a request.
        let Some(Value::Object(answer)) = document.pointer_mut(&answer) else {
            continue;
        };
        let links = answer.entry("links").or_insert_with(|| json!({}));
        if let Value::Object(links) = links {
            links.insert(
                edge.name.into(),
                json!({
                    "operationRef": pointer(&edge.to),
                    "parameters": {"id": format!("$response.body#/{}", edge.field)},
                    "description": edge.description,
                }),
            );
        }
    }
}

/// `#/paths/~1events~1{id}/get`: an operation as a JSON pointer.
fn pointer((method, path): &Operation) -> String {
    format!(
        "#/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{EDGES, pointer};

    /// Every link starts at a documented answer, whose body has the field,
    /// and ends at an operation of the document that has an `id`.
    #[test]
    fn every_link_joins_two_documented_operations() {
        let spec = crate::routes::document();
        for edge in EDGES {
            let from = pointer(&edge.from);
            let response = spec
                .pointer(&format!("{}/responses/{}", &from[1..], edge.status))
                .unwrap_or_else(|| panic!("{from} has no {} answer", edge.status));
            let link = &response["links"][edge.name];
            assert_eq!(link["operationRef"], pointer(&edge.to), "{from}");
            let target = spec
                .pointer(&pointer(&edge.to)[1..])
                .unwrap_or_else(|| panic!("{} is not in the document", pointer(&edge.to)));
            let has_id = target["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "id" && p["in"] == "path"));
            assert!(has_id, "{}", pointer(&edge.to));
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            let schema = schema
                .as_str()
                .and_then(|r| spec.pointer(&r[1..]))
                .unwrap_or(&Value::Null);
            assert!(
                schema["properties"][edge.field].is_object(),
                "{from} {}: no field {}",
                edge.status,
                edge.field
            );
        }
    }
}
