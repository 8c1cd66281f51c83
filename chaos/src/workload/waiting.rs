//! The waiting-list side of the workload: clients join the list of a
//! storefront event's ticket type (accepted once that type is sold out,
//! else `409`), and look at their entries until one is offered; the
//! offered hold then joins the holds the workload confirms and releases,
//! so offers race with expiry, cancels and faults like any other hold.

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use serde_json::json;
use uuid::Uuid;

use super::{Request, Shared, read, take};
use crate::history::{Op, OpKind};

/// Joins the waiting list of a random type of a random event that sells
/// types (a read where none does).
pub(super) async fn join(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let typed: Vec<_> = shared
        .config
        .events
        .iter()
        .filter(|event| !event.ticket_types.is_empty())
        .collect();
    let Some(event) = typed.choose(rng) else {
        return read(shared, client, rng).await;
    };
    let mut body = json!({
        "quantity": rng.random_range(1..=2),
        "ticket_type": event.ticket_types.choose(rng),
    });
    if let Some(user) = event.users.choose(rng) {
        body["user_id"] = json!(user);
    }
    let mut request = Request::new(
        OpKind::Join,
        reqwest::Method::POST,
        format!("/events/{}/waiting-list", event.id),
    );
    request.event_id = Some(event.id);
    request.body = Some(body);
    request.key = shared.identity(client);
    let key = request.key;
    let op = shared.send(client, rng, request).await;
    if op.status == 201
        && let Some(id) = op.body["id"].as_str().and_then(|id| id.parse().ok())
    {
        let mut known = shared.known.lock().expect("known ids");
        known.waiting.push(id);
        // Its hold, once offered, has its id and its owner.
        if let Some(key) = key {
            known.owners.insert(id, key);
        }
    }
    Some(op)
}

/// Looks at one entry: once offered, its hold (same id) can be confirmed
/// or released; until then it goes back among those to look at.
pub(super) async fn look(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let id: Option<Uuid> = take(&mut shared.known.lock().expect("known ids").waiting, rng);
    let Some(id) = id else {
        return read(shared, client, rng).await;
    };
    let mut request = Request::new(
        OpKind::Wait,
        reqwest::Method::GET,
        format!("/waiting-list/{id}"),
    );
    request.reservation_id = Some(id);
    request.key = shared.owner(id);
    let op = shared.send(client, rng, request).await;
    let mut known = shared.known.lock().expect("known ids");
    match op.body["status"].as_str() {
        Some("offered") if op.status == 200 => known.held.push(id),
        // Left the list only by an offer; a failed look tries again.
        _ if op.status != 404 => known.waiting.push(id),
        _ => {}
    }
    Some(op)
}
