//! Integer fields of request bodies. JSON has a single number type, and to
//! JSON Schema (and so to the OpenAPI document and its clients) `3.0` and
//! `3e0` are the integer 3; serde would refuse them for an `i64`. These
//! take any number with no fractional part that fits, and refuse the rest
//! as before (a 422 naming the value).
//!
//! `#[serde(deserialize_with = "crate::integral::i64")]`, or for an
//! optional field `#[serde(default, deserialize_with = "crate::integral::option_i64")]`
//! (`null` stays "absent").

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{Error, Unexpected, Visitor},
};

/// An `i64` written as any integral JSON number.
struct Integral(i64);

impl<'de> Deserialize<'de> for Integral {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_i64(IntegralVisitor).map(Self)
    }
}

struct IntegralVisitor;

/// 2^63: the first float past `i64::MAX` (which has no exact float).
const I64_END: f64 = 9_223_372_036_854_775_808.0;

impl Visitor<'_> for IntegralVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
        // NaN and the infinities fail the range test; the cast is exact
        // for an integral value inside it.
        if v.fract() == 0.0 && (-I64_END..I64_END).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Integral::deserialize(deserializer).map(|Integral(v)| v)
}

pub fn option_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Option::<Integral>::deserialize(deserializer).map(|v| v.map(|Integral(v)| v))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::i64")]
        n: i64,
        #[serde(default, deserialize_with = "super::option_i64")]
        m: Option<i64>,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_taken() {
        for (json, n) in [
            (r#"{"n": 3}"#, 3),
            (r#"{"n": -3}"#, -3),
            (r#"{"n": 3.0}"#, 3),
            (r#"{"n": 3e0}"#, 3),
            (r#"{"n": 30076.0}"#, 30076),
            (r#"{"n": -0.0}"#, 0),
            (r#"{"n": 9223372036854775807}"#, i64::MAX),
            (r#"{"n": -9223372036854775808}"#, i64::MIN),
            (r#"{"n": -9223372036854775808.0}"#, i64::MIN),
        ] {
            assert_eq!(parse(json).map(|b| b.n), Ok(n), "{json}");
        }
        assert_eq!(parse(r#"{"n": 1, "m": 2.0}"#).map(|b| b.m), Ok(Some(2)));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).map(|b| b.m), Ok(None));
        assert_eq!(parse(r#"{"n": 1}"#).map(|b| b.m), Ok(None));
    }

    #[test]
    fn everything_else_is_refused() {
        for json in [
            r#"{"n": 1.5}"#,
            r#"{"n": 1e30}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 9223372036854775808.0}"#,
            r#"{"n": 99999999999999999999999}"#,
            r#"{"n": "2"}"#,
            r#"{"n": true}"#,
            r#"{"n": null}"#,
            r#"{"n": 1, "m": 0.5}"#,
            r#"{"n": 1, "m": "2"}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
