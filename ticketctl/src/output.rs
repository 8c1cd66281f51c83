//! How results are shown: JSON for scripts (exactly what the api answered,
//! or a list of it), or aligned text for people.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

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
