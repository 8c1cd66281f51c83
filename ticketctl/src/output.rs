//! How results are shown: JSON for scripts (exactly what the api answered,
//! or a list of it), or aligned text for people.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api::Api;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A column of a text table: its header and the field it shows.
pub type Column = (&'static str, &'static str);

/// Prints `value` as JSON, or as text by `render`.
pub fn emit(format: Format, value: &Value, render: impl FnOnce(&Value) -> String) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Text => {
            let text = render(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

/// A spinner on stderr counting what a walk has seen (hidden when stderr
/// is not a terminal).
pub fn counter(what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

/// Prints the keyset page at `first` (`{key: [...], "next_after": …}`),
/// or with `all` every page from it on, following the api's
/// `Link: rel="next"`: as JSON, the rows under `key` and the last
/// `next_after`; as text, a table and how to go on.
pub async fn walk_pages(
    api: &Api,
    out: Format,
    first: String,
    key: &'static str,
    all: bool,
    columns: &[Column],
) -> anyhow::Result<()> {
    let (mut rows, mut next_after) = (Vec::new(), None);
    let mut next = Some(first);
    let bar = if all {
        counter(key)
    } else {
        ProgressBar::hidden()
    };
    while let Some(path) = next {
        let (page, following) = api.page(&path).await?;
        let found = page[key].as_array().cloned().unwrap_or_default();
        bar.inc(found.len() as u64);
        rows.extend(found);
        next_after = page["next_after"].as_str().map(str::to_owned);
        next = following.filter(|_| all);
    }
    bar.finish_and_clear();
    let page = json!({key: rows, "next_after": next_after});
    emit(out, &page, |page| {
        let rows = page[key].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut text = table(rows, columns);
        if let Some(next) = &next_after {
            text.push_str(&format!("\n(more: --after {next}, or --all)"));
        }
        text
    });
    Ok(())
}

/// A field as text: strings bare, `null` as `-`, anything else as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `rows` as a table with a header line, columns aligned.
pub fn table(rows: &[Value], columns: &[Column]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, field)| cell(&row[*field]))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut lines = vec![line(columns.iter().map(|(h, _)| (*h).to_owned()).collect())];
    lines.extend(cells.into_iter().map(line));
    lines.join("\n")
}

/// One object as `field: value` lines.
pub fn fields(value: &Value) -> String {
    match value.as_object() {
        Some(object) => object
            .iter()
            .map(|(key, value)| format!("{key}: {}", cell(value)))
            .collect::<Vec<_>>()
            .join("\n"),
        None => cell(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_show_nulls_as_dashes() {
        let rows = [
            json!({"id": 1, "name": "Concert"}),
            json!({"id": 22, "name": null}),
        ];
        assert_eq!(
            table(&rows, &[("ID", "id"), ("NAME", "name")]),
            "ID  NAME\n1   Concert\n22  -"
        );
    }
}
