//! Facts about a pod read from its JSON, shared by the API server and kubectl.

use serde_json::Value;

/// The names of the pod's app containers and of its init containers, in spec order.
pub fn container_names(pod: &Value) -> (Vec<String>, Vec<String>) {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    (names("containers"), names("initContainers"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn app_and_init_containers_in_order() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "web"}, {"name": "sidecar"}, {"image": "nameless"}],
        }});
        assert_eq!(
            container_names(&pod),
            (vec!["web".into(), "sidecar".into()], vec!["setup".into()])
        );
        assert_eq!(container_names(&json!({})), (vec![], vec![]));
    }
}
