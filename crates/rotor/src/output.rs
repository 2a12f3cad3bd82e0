//! How the admin commands print their answers: a table for people (the
//! default), or the same JSON the HTTP API answers (`--output json`) for
//! scripts.

use std::sync::OnceLock;

use serde_json::Value;

/// The answer format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Aligned columns (one row per item; KEY VALUE for one item).
    #[default]
    Table,
    /// Pretty-printed JSON, as the HTTP API answers.
    Json,
}

static FORMAT: OnceLock<Output> = OnceLock::new();

/// Chooses the format for this process (once, in `main`).
pub fn set(o: Output) {
    let _ = FORMAT.set(o);
}

/// Prints an answer (a wire struct, or a list of them) in the chosen format.
pub fn print<T: serde::Serialize>(v: &T) {
    let v = serde_json::to_value(v).unwrap_or(Value::Null);
    let v = &v;
    match FORMAT.get().copied().unwrap_or_default() {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Table => print!("{}", table(v)),
    }
}

/// A cell: scalars as text, an object by its slug, uuid or id, a list
/// comma-separated, null as `-`.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) => ["slug", "uuid", "id", "name"]
            .iter()
            .find_map(|k| o.get(*k).map(cell))
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    };
    if text.chars().count() > 72 {
        let cut: String = text.chars().take(71).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn rows_to_text(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The table of an answer.
pub fn table(v: &Value) -> String {
    match v {
        Value::Array(items) if items.is_empty() => "(none)\n".to_owned(),
        Value::Array(items) => {
            let mut keys: Vec<String> = Vec::new();
            for item in items {
                if let Value::Object(o) = item {
                    for k in o.keys() {
                        if !keys.contains(k) {
                            keys.push(k.clone());
                        }
                    }
                }
            }
            if keys.is_empty() {
                return items.iter().map(|i| cell(i) + "\n").collect();
            }
            let mut rows = vec![keys.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>()];
            for item in items {
                rows.push(keys.iter().map(|k| cell(&item[k.as_str()])).collect());
            }
            rows_to_text(&rows)
        }
        Value::Object(o) => {
            let rows: Vec<Vec<String>> = o.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
            rows_to_text(&rows)
        }
        other => format!("{}\n", cell(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_become_aligned_columns_and_objects_key_value_rows() {
        let t = table(&json!([
            {"slug": "a", "scopes": ["x", "y"], "app": {"slug": "s", "uuid": "u"}, "webhookUrl": null},
            {"slug": "bbbb", "scopes": [], "app": {"slug": "t"}, "webhookUrl": "https://h"}
        ]));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["APP", "SCOPES", "SLUG", "WEBHOOKURL"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["s", "x,y", "a", "-"]
        );
        assert_eq!(lines[1].find('x'), lines[0].find("SCOPES"));
        assert_eq!(table(&json!([])), "(none)\n");
        assert_eq!(table(&json!({"revoked": true})), "revoked  true\n");
    }
}
