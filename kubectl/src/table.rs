//! Printing the server's `Table`s as kubectl does: the columns the server chose (those
//! of priority above 0 only with `-o wide`), headers upper-cased, an optional NAMESPACE
//! column first and LABELS last, cells separated by kubectl's tabwriter.

use std::collections::BTreeMap;

use minik8s_api::{Table, TableColumnDefinition, TableRow};
use serde_json::Value;

use crate::tabwriter::TabWriter;

#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    /// Include the columns of priority above 0.
    pub wide: bool,
    pub no_headers: bool,
    /// A NAMESPACE column first (`-A`).
    pub with_namespace: bool,
    /// Prefix names with `kind/` (several resource types in one `get`).
    pub kind_prefix: Option<String>,
    /// A LABELS column last.
    pub show_labels: bool,
    /// One column per label key (`-L`).
    pub label_columns: Vec<String>,
}

/// Prints tables, possibly in several parts (pages, or the events of a watch), keeping
/// the columns aligned from one part to the next.
pub struct TablePrinter {
    options: TableOptions,
    columns: Vec<TableColumnDefinition>,
    writer: TabWriter,
    header_done: bool,
}

impl TablePrinter {
    pub fn new(options: TableOptions) -> TablePrinter {
        TablePrinter {
            options,
            columns: Vec::new(),
            writer: TabWriter::for_tables(),
            header_done: false,
        }
    }

    /// Adds the rows of `table` (whose column definitions, when present, replace the
    /// ones seen before) and returns the aligned text. The header comes before the first
    /// row printed.
    pub fn print(&mut self, table: &Table) -> String {
        if !table.column_definitions.is_empty() {
            self.columns = table.column_definitions.clone();
        }
        if table.rows.is_empty() {
            return String::new();
        }
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.options.wide || self.columns[i].priority == 0)
            .collect();
        let name_column = shown.iter().position(|&i| self.columns[i].format == "name");
        if !self.header_done {
            self.header_done = true;
            if !self.options.no_headers {
                let mut cells: Vec<String> = Vec::new();
                if self.options.with_namespace {
                    cells.push("NAMESPACE".into());
                }
                cells.extend(shown.iter().map(|&i| self.columns[i].name.to_uppercase()));
                cells.extend(self.options.label_columns.iter().map(|k| label_header(k)));
                if self.options.show_labels {
                    cells.push("LABELS".into());
                }
                self.writer.write_str(&cells.join("\t"));
                self.writer.write_str("\n");
            }
        }
        for row in &table.rows {
            let line = self.row(row, &shown, name_column);
            self.writer.write_str(&line);
            self.writer.write_str("\n");
        }
        self.writer.flush();
        self.writer.take_output()
    }

    fn row(&self, row: &TableRow, shown: &[usize], name_column: Option<usize>) -> String {
        let metadata = row.object.as_ref().and_then(|o| o.get("metadata"));
        let mut cells: Vec<String> = Vec::new();
        if self.options.with_namespace {
            cells.push(
                metadata
                    .and_then(|m| m["namespace"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        for (pos, &i) in shown.iter().enumerate() {
            let mut cell = row.cells.get(i).map(format_cell).unwrap_or_default();
            if Some(pos) == name_column
                && let Some(kind) = &self.options.kind_prefix
            {
                cell = format!("{kind}/{cell}");
            }
            cells.push(cell);
        }
        let labels = labels_of(metadata);
        for key in &self.options.label_columns {
            cells.push(labels.get(key).cloned().unwrap_or_default());
        }
        if self.options.show_labels {
            cells.push(format_labels(&labels));
        }
        cells.join("\t")
    }
}

/// A cell as kubectl prints it: strings cut at the first line break, numbers without a
/// fraction when they have none, nothing for null.
pub fn format_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn labels_of(metadata: Option<&Value>) -> BTreeMap<String, String> {
    metadata
        .and_then(|m| m["labels"].as_object())
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `a=1,b=2`, sorted by key, or `<none>`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The header of a `-L` column: the key's last path segment, upper-cased.
fn label_header(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods_table() -> Table {
        let mut t = Table::new(vec![
            TableColumnDefinition::new("Name", "string", "name", 0, ""),
            TableColumnDefinition::new("Ready", "string", "", 0, ""),
            TableColumnDefinition::new("Status", "string", "", 0, ""),
            TableColumnDefinition::new("Restarts", "string", "", 0, ""),
            TableColumnDefinition::new("Age", "string", "", 0, ""),
            TableColumnDefinition::new("IP", "string", "", 1, ""),
        ]);
        for (name, ns, status, labels) in [
            (
                "web",
                "default",
                "Running",
                json!({"app": "web", "tier": "fe"}),
            ),
            ("db-primary", "data", "CrashLoopBackOff", json!(null)),
        ] {
            t.rows.push(TableRow {
                cells: vec![
                    json!(name),
                    json!("1/1"),
                    json!(status),
                    json!("0"),
                    json!("5m"),
                    json!("10.0.0.1"),
                ],
                object: Some(
                    json!({"metadata": {"name": name, "namespace": ns, "labels": labels}}),
                ),
            });
        }
        t
    }

    #[test]
    fn default_columns() {
        let mut p = TablePrinter::new(TableOptions::default());
        assert_eq!(
            p.print(&pods_table()),
            "NAME         READY   STATUS             RESTARTS   AGE\n\
             web          1/1     Running            0          5m\n\
             db-primary   1/1     CrashLoopBackOff   0          5m\n"
        );
    }

    #[test]
    fn wide_namespaces_and_labels() {
        let mut p = TablePrinter::new(TableOptions {
            wide: true,
            with_namespace: true,
            show_labels: true,
            ..TableOptions::default()
        });
        assert_eq!(
            p.print(&pods_table()),
            "NAMESPACE   NAME         READY   STATUS             RESTARTS   AGE   IP         LABELS\n\
             default     web          1/1     Running            0          5m    10.0.0.1   app=web,tier=fe\n\
             data        db-primary   1/1     CrashLoopBackOff   0          5m    10.0.0.1   <none>\n"
        );
    }

    #[test]
    fn kind_prefix_label_columns_and_no_headers() {
        let mut p = TablePrinter::new(TableOptions {
            no_headers: true,
            kind_prefix: Some("pod".into()),
            label_columns: vec!["app".into()],
            ..TableOptions::default()
        });
        assert_eq!(
            p.print(&pods_table()),
            "pod/web          1/1   Running            0     5m    web\n\
             pod/db-primary   1/1   CrashLoopBackOff   0     5m    \n"
        );
    }

    #[test]
    fn cells_are_cut_at_line_breaks() {
        assert_eq!(format_cell(&json!("a\nb")), "a...");
        assert_eq!(format_cell(&json!(3)), "3");
        assert_eq!(format_cell(&json!(null)), "");
    }
}
