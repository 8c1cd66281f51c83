//! The pages that problem `type`s point to: one per kind of refusal, and an
//! index, so a developer who meets a `type` can open it in a browser.

use axum::{
    extract::Path,
    response::{Html, IntoResponse, Response},
};

use crate::problem::{ApiError, TYPES};

/// `text` as HTML, its `code spans` as `<code>`.
fn escape(text: &str) -> String {
    let text = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body><h1>{}</h1>{body}<p><a href=\"/problems\">All problem types</a></p></body></html>",
        escape(title),
        escape(title)
    ))
}

/// Every problem type this api answers with.
pub async fn index() -> Html<String> {
    let items: String = TYPES
        .iter()
        .map(|(slug, title, _)| {
            format!(
                "<li><a href=\"/problems/{slug}\"><code>{slug}</code></a>: {}</li>",
                escape(title)
            )
        })
        .collect();
    page("Problem types", &format!("<ul>{items}</ul>"))
}

/// One problem type.
pub async fn describe(Path(slug): Path<String>) -> Response {
    match TYPES.iter().find(|(s, ..)| *s == slug) {
        Some((slug, title, text)) => page(
            title,
            &format!(
                "<p><code>type: /problems/{slug}</code></p><p>{}</p>",
                escape(text)
            ),
        )
        .into_response(),
        None => ApiError::NotFound(format!("no problem type {slug:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_become_safe_html() {
        assert_eq!(
            escape("set `ADMIN_TOKEN` <now> & retry"),
            "set <code>ADMIN_TOKEN</code> &lt;now&gt; &amp; retry"
        );
    }
}
