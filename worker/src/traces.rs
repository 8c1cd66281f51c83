//! The worker's side of a request's trace: each command's decision is
//! recorded as a span (`decide`) whose parent is the api span that
//! published it (its `traceparent` header), from the start of its group's
//! decision to its outcome. Built only while traces are exported, so the
//! deciding path pays nothing for it otherwise.

use std::time::SystemTime;

use lapin::message::Delivery;
use opentelemetry::{
    KeyValue,
    trace::{Span, Tracer},
};
use shared::{
    messages::{self, Command, Outcome},
    trace_context,
};

/// Records the decision of every command of a group that started at
/// `started` and carries a trace context.
pub fn record(started: SystemTime, items: &[(Delivery, Command)], outcomes: &[Outcome]) {
    if !shared::telemetry::exporting() {
        return;
    }
    let tracer = opentelemetry::global::tracer("worker");
    for ((delivery, _), outcome) in items.iter().zip(outcomes) {
        let Some(traceparent) = messages::traceparent(&delivery.properties) else {
            continue;
        };
        let parent = trace_context::parse(&traceparent);
        let mut span = tracer
            .span_builder("decide")
            .with_start_time(started)
            .with_attributes([
                KeyValue::new("reservation.id", outcome.reservation_id.to_string()),
                KeyValue::new("reservation.status", outcome.status.as_str()),
                KeyValue::new("event.id", outcome.event_id),
            ])
            .start_with_context(&tracer, &parent);
        span.end();
    }
}
