//! The pieces every `describe` shares, written as kubectl writes them: indented lines
//! through kubectl's describe tabwriter, RFC 1123 times, kubectl's ages, and the
//! multi-line blocks for labels, annotations, tolerations and events.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::tabwriter::TabWriter;

/// kubectl's `PrefixWriter`: each level indents two spaces; cells end with `\t`.
pub struct Writer {
    tw: TabWriter,
    pub now: Timestamp,
    tz: TimeZone,
}

impl Writer {
    pub fn new(now: Timestamp) -> Writer {
        Writer {
            tw: TabWriter::for_describe(),
            now,
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }

    pub fn write(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.tw.write_str("  ");
        }
        self.tw.write_str(text);
    }

    /// Ends the current column blocks (kubectl flushes before the events table).
    pub fn flush(&mut self) {
        self.tw.flush();
    }

    pub fn finish(self) -> String {
        self.tw.finish()
    }

    /// The text with its tabs, not aligned.
    pub fn unaligned(self) -> String {
        self.tw.unaligned()
    }

    /// Go's `time.RFC1123Z` in the local time zone: `Mon, 02 Jan 2006 15:04:05 -0700`;
    /// a missing time prints as Go's zero time.
    pub fn time(&self, value: &Value) -> String {
        match parse_time(value) {
            Some(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%a, %d %b %Y %H:%M:%S %z")
                .to_string(),
            None => "Mon, 01 Jan 0001 00:00:00 +0000".to_string(),
        }
    }

    /// kubectl's `translateTimestampSince`: the age of a time, `<unknown>` if missing.
    pub fn since(&self, value: &Value) -> String {
        match parse_time(value) {
            Some(t) => human_duration(self.now.duration_since(t).as_secs()),
            None => "<unknown>".to_string(),
        }
    }
}

pub fn parse_time(value: &Value) -> Option<Timestamp> {
    value.as_str().and_then(|s| s.parse::<Timestamp>().ok())
}

/// The string at `value`, or "".
pub fn s(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The list at `value`, or an empty one.
pub fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A scalar as Go's `%v` prints it: strings bare, numbers, booleans, and "" for null.
pub fn v(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `True` or `False`, as kubectl's `printBool`.
pub fn print_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

pub use minik8s_api::duration::human_duration;

/// The keys of a map in sorted order with their string values.
fn sorted_map(value: &Value) -> Vec<(&str, &str)> {
    let mut entries: Vec<(&str, &str)> = value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), s(v))).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

/// `Labels:  a=1` and one more line per label; `<none>` when empty.
pub fn labels_multiline(w: &mut Writer, title: &str, labels: &Value) {
    w.write(0, &format!("{title}:\t"));
    let entries = sorted_map(labels);
    if entries.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        w.write(0, &format!("{k}={v}\n"));
    }
}

const MAX_ANNOTATION_LEN: usize = 140;
const SKIPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// kubectl's annotations block: long or multi-line values on their own lines, cut at
/// 140 characters.
pub fn annotations_multiline(w: &mut Writer, title: &str, annotations: &Value) {
    w.write(0, &format!("{title}:\t"));
    let entries: Vec<(&str, &str)> = sorted_map(annotations)
        .into_iter()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(k))
        .collect();
    if entries.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.write(0, &format!("{key}:\n"));
            for line in value.split('\n') {
                w.write(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.write(0, &format!("{key}: {value}\n"));
        }
    }
}

/// Go's `shorten`: the first `max` bytes and `...`.
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `Tolerations:  key=value:Effect op=Exists for 300s`, sorted by key.
pub fn tolerations_multiline(w: &mut Writer, title: &str, tolerations: &Value) {
    w.write(0, &format!("{title}:\t"));
    let mut items: Vec<&Value> = list(tolerations).iter().collect();
    if items.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    items.sort_by_key(|t| s(&t["key"]));
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let (key, value, effect) = (s(&t["key"]), s(&t["value"]), s(&t["effect"]));
        let mut line = key.to_string();
        if !value.is_empty() {
            line.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            line.push_str(&format!(":{effect}"));
        }
        if s(&t["operator"]) == "Exists" && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                line.push_str(" op=Exists");
            } else {
                line.push_str("op=Exists");
            }
        }
        if let Some(seconds) = t["tolerationSeconds"].as_i64() {
            line.push_str(&format!(" for {seconds}s"));
        }
        w.write(0, &format!("{line}\n"));
    }
}

/// `Taints:  key=value:Effect`, sorted by effect and key.
pub fn taints_multiline(w: &mut Writer, title: &str, taints: &Value) {
    w.write(0, &format!("{title}:\t"));
    let mut items: Vec<&Value> = list(taints).iter().collect();
    if items.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    items.sort_by_key(|t| format!("{},{}", s(&t["effect"]), s(&t["key"])));
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let value = s(&t["value"]);
        let text = if value.is_empty() {
            format!("{}:{}", s(&t["key"]), s(&t["effect"]))
        } else {
            format!("{}={value}:{}", s(&t["key"]), s(&t["effect"]))
        };
        w.write(0, &format!("{text}\n"));
    }
}

/// The events table kubectl ends a description with, oldest first; `<none>` if there
/// are no events.
pub fn events(w: &mut Writer, events: &[Value]) {
    if events.is_empty() {
        w.write(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| parse_time(&e["lastTimestamp"]));
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.write(1, "----\t------\t----\t----\t-------\n");
    for e in sorted {
        let first = if parse_time(&e["eventTime"]).is_some() {
            w.since(&e["eventTime"])
        } else {
            w.since(&e["firstTimestamp"])
        };
        let count = e["count"].as_i64().unwrap_or(0);
        let interval = if e["series"].is_object() {
            format!(
                "{} (x{} over {first})",
                w.since(&e["series"]["lastObservedTime"]),
                e["series"]["count"].as_i64().unwrap_or(0)
            )
        } else if count > 1 {
            format!("{} (x{count} over {first})", w.since(&e["lastTimestamp"]))
        } else {
            first
        };
        let source = match s(&e["source"]["component"]) {
            "" => s(&e["reportingComponent"]),
            c => c,
        };
        let line = format!(
            "{}\t{}\t{interval}\t{source}\t{}\n",
            s(&e["type"]),
            s(&e["reason"]),
            s(&e["message"]).trim()
        );
        w.write(1, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_and_ages() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let mut w = Writer::new(now);
        w.tz = TimeZone::UTC;
        assert_eq!(
            w.time(&json!("2024-05-01T11:58:01Z")),
            "Wed, 01 May 2024 11:58:01 +0000"
        );
        assert_eq!(w.time(&Value::Null), "Mon, 01 Jan 0001 00:00:00 +0000");
        assert_eq!(w.since(&json!("2024-05-01T11:58:01Z")), "119s");
        assert_eq!(w.since(&json!("2024-05-01T12:00:30Z")), "<invalid>");
        assert_eq!(w.since(&Value::Null), "<unknown>");
        assert_eq!(human_duration(199), "3m19s");
        assert_eq!(human_duration(5 * 86400), "5d");
    }

    #[test]
    fn label_and_annotation_blocks() {
        let mut w = Writer::new(Timestamp::UNIX_EPOCH);
        labels_multiline(&mut w, "Labels", &json!({"b": "2", "a": "1"}));
        annotations_multiline(
            &mut w,
            "Annotations",
            &json!({"multi": "x\ny\n", "kubectl.kubernetes.io/last-applied-configuration": "{}"}),
        );
        labels_multiline(&mut w, "Node-Selectors", &json!(null));
        assert_eq!(
            w.finish(),
            "Labels:          a=1\n                 b=2\nAnnotations:     multi:\n                   x\n                   y\nNode-Selectors:  <none>\n"
        );
    }

    #[test]
    fn tolerations_read_like_kubectl() {
        let mut w = Writer::new(Timestamp::UNIX_EPOCH);
        tolerations_multiline(
            &mut w,
            "Tolerations",
            &json!([
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                {"operator": "Exists"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        );
        assert_eq!(
            w.finish(),
            "Tolerations:  op=Exists\n              dedicated=gpu:NoSchedule\n              node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n"
        );
    }
}
