//! kubectl's `DescribePodTemplate`, which `rollout history --revision` and
//! `rollout undo --dry-run` print: written through kubectl's prefix writer with no
//! tabwriter, so cells keep their tabs.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::pod::{containers, volumes};
use super::writer::{
    Writer, annotations_multiline, labels_multiline, list, s, tolerations_multiline,
};

/// The template's description, tabs unaligned, ending with a newline.
pub fn describe_pod_template(template: &Value) -> String {
    let mut w = Writer::new(Timestamp::now());
    let meta = &template["metadata"];
    let spec = &template["spec"];
    w.write(0, "Pod Template:\n");
    labels_multiline(&mut w, "  Labels", &meta["labels"]);
    if meta["annotations"]
        .as_object()
        .is_some_and(|a| !a.is_empty())
    {
        annotations_multiline(&mut w, "  Annotations", &meta["annotations"]);
    }
    if !s(&spec["serviceAccountName"]).is_empty() {
        w.write(
            1,
            &format!("Service Account:\t{}\n", s(&spec["serviceAccountName"])),
        );
    }
    // The pod a template's field references would read.
    let pod = json!({"metadata": meta, "spec": spec});
    let mut text = w.unaligned();
    if !list(&spec["initContainers"]).is_empty() {
        text.push_str(&indented(|w| {
            containers(
                w,
                &pod,
                "Init Containers",
                list(&spec["initContainers"]),
                &Value::Null,
            )
        }));
    }
    text.push_str(&indented(|w| {
        containers(
            w,
            &pod,
            "Containers",
            list(&spec["containers"]),
            &Value::Null,
        )
    }));
    text.push_str(&indented(|w| volumes(w, list(&spec["volumes"]))));
    let mut w = Writer::new(Timestamp::now());
    if !s(&spec["priorityClassName"]).is_empty() {
        w.write(
            1,
            &format!("Priority Class Name:\t{}\n", s(&spec["priorityClassName"])),
        );
    }
    labels_multiline(&mut w, "  Node-Selectors", &spec["nodeSelector"]);
    tolerations_multiline(&mut w, "  Tolerations", &spec["tolerations"]);
    text.push_str(&w.unaligned());
    text
}

/// A pod's section as a template's: the title two spaces in, the names of containers and
/// volumes one space further (kubectl's `space` and `nameIndent`).
fn indented(write: impl FnOnce(&mut Writer)) -> String {
    let mut w = Writer::new(Timestamp::now());
    write(&mut w);
    let mut out = String::new();
    for (i, line) in w.unaligned().split_inclusive('\n').enumerate() {
        if i == 0 {
            out.push_str("  ");
        } else if line.starts_with("  ") && !line.starts_with("   ") {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}
