//! The api as ticketctl sees it: JSON in and out, the admin token on every
//! request, refusals (RFC 9457 problem documents) turned into errors that
//! say what the api said, and the `Link: rel="next"` of paged answers.

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::Value;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A conditional read's answer.
pub enum Fresh {
    /// `304`: what the tag names is still current.
    Unchanged,
    /// The body and its `ETag`.
    Changed(Value, Option<String>),
}

impl Api {
    pub fn new(url: &str, token: &str, timeout_secs: u64) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://"),
            "TICKETCTL_URL must be an http:// URL (got {base:?})"
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(timeout_secs.max(1)))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base,
            token: token.to_owned(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        // Paths from the api's own `Link` headers may be absolute URLs.
        let url = if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let request = self.http.request(method, url);
        if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        }
    }

    /// `method path` with an optional JSON body; the answer's JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = send(request, &method, path).await?;
        json(response).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// One page: its JSON and the path of the next page (`Link`,
    /// `rel="next"`), if any.
    pub async fn page(&self, path: &str) -> anyhow::Result<(Value, Option<String>)> {
        let response = send(self.request(Method::GET, path), &Method::GET, path).await?;
        let next = response
            .headers()
            .get_all(header::LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(next_link);
        Ok((json(response).await?, next))
    }

    /// A read that answers `304` while `etag` is current.
    pub async fn get_if_changed(&self, path: &str, etag: Option<&str>) -> anyhow::Result<Fresh> {
        let mut request = self.request(Method::GET, path);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = send(request, &Method::GET, path).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fresh::Unchanged);
        }
        let tag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Fresh::Changed(json(response).await?, tag))
    }
}

async fn send(
    request: reqwest::RequestBuilder,
    method: &Method,
    path: &str,
) -> anyhow::Result<Response> {
    request
        .send()
        .await
        .with_context(|| format!("{method} {path}: the api did not answer"))
}

/// The JSON of a 2xx answer; a refusal as an error carrying the problem's
/// title and detail.
async fn json(response: Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    decode(status, &text)
}

/// An answer's status and body as `json` returns them. `204` (a removal)
/// has no body by definition: `null`, the success itself being the news.
fn decode(status: StatusCode, text: &str) -> anyhow::Result<Value> {
    if status == StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    let body: Option<Value> = serde_json::from_str(text).ok();
    if status.is_success() {
        return body
            .ok_or_else(|| anyhow!("the api answered {status} with a body that is not JSON"));
    }
    Err(match body {
        Some(problem) if problem.get("type").is_some() => anyhow!(
            "{} ({}): {}",
            problem["title"].as_str().unwrap_or("refused"),
            status.as_u16(),
            problem["detail"].as_str().unwrap_or_default()
        ),
        // A decided outcome that is not a success (409 with the reservation).
        Some(other) => anyhow!("{status}: {other}"),
        None => anyhow!("{status}: {}", text.trim()),
    })
}

/// The target of a `Link` value's `rel="next"` entry (RFC 8288).
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_content_is_a_success_without_a_body() {
        assert_eq!(decode(StatusCode::NO_CONTENT, "").ok(), Some(Value::Null));
        assert!(decode(StatusCode::OK, "").is_err());
        let refused = decode(
            StatusCode::NOT_FOUND,
            r#"{"type":"/problems/not-found","title":"Not found","detail":"no endpoint 3"}"#,
        );
        assert_eq!(
            refused.err().map(|e| e.to_string()).as_deref(),
            Some("Not found (404): no endpoint 3")
        );
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        assert_eq!(
            next_link("</a?after=1>; rel=\"next\"").as_deref(),
            Some("/a?after=1")
        );
        assert_eq!(
            next_link("</first>; rel=\"first\", </b?after=2>; rel=next").as_deref(),
            Some("/b?after=2")
        );
        assert_eq!(next_link("</first>; rel=\"first\""), None);
    }
}
