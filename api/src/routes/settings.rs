//! The live settings over HTTP (admin): what each one is by default (flags
//! and environment), what etcd overrides it with, and what is in effect;
//! and setting or removing an override. Values are checked with the parser
//! the api and the workers apply when they see the change
//! (`shared::settings`), so a value this accepts is one that takes effect,
//! and one it refuses never reaches etcd. Every replica and worker picks a
//! change up from its etcd watch, within moments.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::request::Parts,
};
use etcd_client::{Client, GetOptions};
use serde::{Deserialize, Serialize};
use shared::settings::{KEYS, Settings, event_pause_key};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Admin,
    extract::{JsonBody, PathId},
    problem::{ApiError, Problem, Unavailability},
    state::AppState,
};

/// Above the largest event id a setting may name (18 digits).
const MAX_EVENT_ID: i64 = 1_000_000_000_000_000_000;

/// The longest value stored (every valid one is far shorter).
const MAX_VALUE: usize = 100;

/// One live setting.
#[derive(Debug, Serialize, ToSchema)]
pub struct Setting {
    /// `max_quantity`, …, or `events/<id>/sales_paused`.
    pub name: String,
    /// Its value without an override (flags and environment).
    pub default: String,
    /// The value stored in etcd, if any.
    #[serde(rename = "override")]
    pub overridden: Option<String>,
    /// What applies now: the override if it is valid, else the default.
    pub effective: String,
    /// Why the stored override is ignored (set in etcd by hand, not
    /// through this api); absent when it is valid or there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

/// `GET /admin/settings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingList {
    /// The global settings, then every event's pause that has an override.
    pub settings: Vec<Setting>,
}

/// A new value for a setting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewValue {
    /// As text, the way it is stored: `"5"`, `"true"`, `"250"`.
    #[schema(example = "5", max_length = 100)]
    pub value: String,
}

/// Whether `name` is a live setting: a global one or `events/<id>/sales_paused`.
fn known(name: &str) -> bool {
    KEYS.contains(&name)
        || name
            .strip_prefix("events/")
            .and_then(|rest| rest.strip_suffix("/sales_paused"))
            .and_then(|id| id.parse::<i64>().ok())
            // One spelling per event (no sign, no leading zero), and at
            // most 18 digits, as the document's pattern says.
            .is_some_and(|id| (1..MAX_EVENT_ID).contains(&id) && event_pause_key(id) == name)
}

/// The `{name}` of a setting's routes: a live setting, or 404. The
/// document's pattern is the rule `known` applies.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SettingName {
    /// The setting: a global one, or `events/<id>/sales_paused`.
    #[param(
        pattern = "^(max_quantity|reserve_wait_timeout_ms|sales_paused|batch_size|batch_linger_ms|max_hold_seconds|default_hold_seconds|events/[1-9][0-9]{0,17}/sales_paused)$"
    )]
    name: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SettingName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let PathId(name) = PathId::<String>::from_request_parts(parts, state).await?;
        if known(&name) {
            Ok(Self { name })
        } else {
            Err(ApiError::NotFound(format!(
                "no live setting {name:?}: the settings are {} and events/<id>/sales_paused",
                KEYS.join(", ")
            )))
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    tracing::warn!(%error, "etcd unavailable");
    ApiError::unavailable(
        Unavailability::Dependency,
        "etcd (the live settings) is unavailable; retry shortly.",
        1,
    )
}

/// Runs an etcd call within the api's backend timeout; 503 otherwise.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(error)),
        Err(_) => Err(unavailable("timed out")),
    }
}

/// Every override stored in etcd, by name.
async fn overrides(state: &AppState) -> Result<BTreeMap<String, String>, ApiError> {
    let mut client: Client = state.etcd.clone();
    let prefix = &state.settings_prefix;
    let response = within(
        state.backend_timeout,
        client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    Ok(response
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = kv.key_str().ok()?.strip_prefix(prefix.as_str())?;
            Some((key.to_owned(), kv.value_str().ok()?.to_owned()))
        })
        .collect())
}

/// `name` as it stands with `overrides` in etcd.
fn view(defaults: &Settings, overrides: &BTreeMap<String, String>, name: &str) -> Setting {
    let overridden = overrides.get(name).cloned();
    let invalid = overridden
        .as_deref()
        .and_then(|value| defaults.check(name, value).err());
    let effective = defaults.with_overrides(overrides);
    Setting {
        name: name.to_owned(),
        default: defaults.value(name).unwrap_or_default(),
        effective: effective.value(name).unwrap_or_default(),
        overridden,
        invalid,
    }
}

/// Every live setting: default, override and effective value (admin).
#[utoipa::path(get, path = "/admin/settings", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SettingList, example = json!({"settings": [
            {"name": "max_quantity", "default": "10", "override": "4", "effective": "4"},
            {"name": "sales_paused", "default": "false", "override": null, "effective": "false"},
            {"name": "events/42/sales_paused", "default": "false", "override": "true", "effective": "true"}]})),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "etcd is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_settings(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<SettingList>, ApiError> {
    let overrides = overrides(&state).await?;
    let defaults = &state.settings_defaults;
    let events = overrides
        .keys()
        .filter(|name| !KEYS.contains(&name.as_str()));
    let settings = KEYS
        .iter()
        .copied()
        .chain(events.map(String::as_str).filter(|name| known(name)))
        .map(|name| view(defaults, &overrides, name))
        .collect();
    Ok(Json(SettingList { settings }))
}

/// One live setting (admin).
#[utoipa::path(get, path = "/admin/settings/{name}", tag = "admin",
    params(SettingName),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Setting, example = json!({"name": "max_quantity", "default": "10", "override": "4", "effective": "4"})),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such setting", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "etcd is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_setting(
    State(state): State<AppState>,
    _admin: Admin,
    SettingName { name }: SettingName,
) -> Result<Json<Setting>, ApiError> {
    let overrides = overrides(&state).await?;
    Ok(Json(view(&state.settings_defaults, &overrides, &name)))
}

/// Overrides a live setting (admin): checked, then stored in etcd, where
/// every api replica and worker picks it up. `events/<id>/sales_paused`
/// `true` pauses one event's sales.
#[utoipa::path(put, path = "/admin/settings/{name}", tag = "admin",
    params(SettingName),
    request_body(content = NewValue, example = json!({"value": "4"})),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Stored; the setting as it now stands", body = Setting,
            example = json!({"name": "max_quantity", "default": "10", "override": "4", "effective": "4"})),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such setting", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid value for this setting (nothing stored)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "etcd is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_setting(
    State(state): State<AppState>,
    _admin: Admin,
    SettingName { name }: SettingName,
    JsonBody(new): JsonBody<NewValue>,
) -> Result<Json<Setting>, ApiError> {
    if new.value.chars().count() > MAX_VALUE {
        return Err(ApiError::Unprocessable(format!(
            "value must be at most {MAX_VALUE} characters"
        )));
    }
    let value = new.value.trim();
    state
        .settings_defaults
        .check(&name, value)
        .map_err(|reason| ApiError::Unprocessable(format!("{name}: {reason}")))?;
    store(&state, &name, Some(value)).await.map(Json)
}

/// Removes a setting's override (admin): its default applies again.
/// Removing an absent override is harmless.
#[utoipa::path(delete, path = "/admin/settings/{name}", tag = "admin",
    params(SettingName),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The setting as it now stands", body = Setting,
            example = json!({"name": "max_quantity", "default": "10", "override": null, "effective": "10"})),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such setting", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "etcd is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_setting(
    State(state): State<AppState>,
    _admin: Admin,
    SettingName { name }: SettingName,
) -> Result<Json<Setting>, ApiError> {
    store(&state, &name, None).await.map(Json)
}

/// Stores `value` as `name`'s override, or removes the override (`None`),
/// and reads the setting back (etcd's reads are linearizable: the read
/// sees the write).
async fn store(state: &AppState, name: &str, value: Option<&str>) -> Result<Setting, ApiError> {
    let mut client = state.etcd.clone();
    let key = format!("{}{name}", state.settings_prefix);
    let timeout = state.backend_timeout;
    match value {
        Some(value) => within(timeout, client.put(key, value, None))
            .await
            .map(drop)?,
        None => within(timeout, client.delete(key, None)).await.map(drop)?,
    }
    let overrides = overrides(state).await?;
    Ok(view(&state.settings_defaults, &overrides, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_settings_and_event_pauses() {
        let pattern_names = NAME_PATTERN
            .trim_start_matches("^(")
            .trim_end_matches(")$")
            .split('|')
            .filter(|name| !name.starts_with("events/"))
            .collect::<Vec<_>>();
        assert_eq!(
            pattern_names, KEYS,
            "the document's pattern lists every key"
        );
        for name in [
            "max_quantity",
            "events/1/sales_paused",
            "events/42/sales_paused",
        ] {
            assert!(known(name), "{name}");
        }
        for name in [
            "nope",
            "events/0/sales_paused",
            "events/-1/sales_paused",
            "events/+1/sales_paused",
            "events/01/sales_paused",
            "events/1000000000000000000/sales_paused",
            "events/x/sales_paused",
            "events/1/max_quantity",
        ] {
            assert!(!known(name), "{name}");
        }
    }

    /// The names a setting may have, as the document's pattern: the global
    /// ones and each event's pause.
    const NAME_PATTERN: &str = "^(max_quantity|reserve_wait_timeout_ms|sales_paused|batch_size|batch_linger_ms|max_hold_seconds|default_hold_seconds|events/[1-9][0-9]{0,17}/sales_paused)$";

    /// Every `{name}` of the document carries `NAME_PATTERN`: the
    /// global keys and the event pauses.
    #[test]
    fn the_document_states_the_name_pattern() {
        let spec = crate::routes::document();
        let item = &spec["paths"]["/admin/settings/{name}"];
        for method in ["get", "put", "delete"] {
            assert_eq!(
                item[method]["parameters"][0]["schema"]["pattern"], NAME_PATTERN,
                "{method}"
            );
        }
    }

    #[test]
    fn an_invalid_override_is_shown_and_ignored() {
        let defaults = Settings::from_args(&shared::settings::SettingsArgs {
            max_quantity: 10,
            reserve_wait_timeout_ms: 5000,
            sales_paused: false,
            batch_size: 256,
            batch_linger_ms: 2,
            max_hold_seconds: 900,
            default_hold_seconds: 600,
        });
        let overrides = BTreeMap::from([("max_quantity".to_owned(), "0".to_owned())]);
        let shown = view(&defaults, &overrides, "max_quantity");
        assert_eq!(shown.effective, shown.default);
        assert!(shown.invalid.is_some());
    }
}
