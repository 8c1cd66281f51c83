//! W3C trace context (`traceparent`) from the client to the worker that
//! decides its reservation. The api continues the client's trace, or
//! starts one, in its request span (`telemetry` makes tracing spans
//! OpenTelemetry spans) and sends that span's context in the command's
//! `traceparent` header, beside `x-request-id`; the worker names the trace
//! id on the command's log line and, when traces are exported, records its
//! decision as a span of that trace. Parsing and formatting are the
//! OpenTelemetry propagator's.

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header's name, in HTTP and in AMQP alike.
pub const TRACEPARENT: &str = "traceparent";

/// A carrier holding one `traceparent` value.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The remote context a `traceparent` value names (empty when it is not a
/// valid one, which starts a new trace).
pub fn parse(traceparent: &str) -> Context {
    TraceContextPropagator::new().extract(&Traceparent(traceparent))
}

/// The trace id (32 lowercase hex digits) of a valid `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<String> {
    let context = parse(traceparent);
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| span.trace_id().to_string())
}

/// The `traceparent` of the current span (e.g. the api's request span).
pub fn current() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_names_its_trace_and_a_bad_one_none() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(value).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "not a traceparent",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }
}
