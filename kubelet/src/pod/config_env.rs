//! Environment variables from ConfigMaps and Secrets: `env[].valueFrom.configMapKeyRef`
//! and `secretKeyRef`, and `envFrom` with its `prefix`, with the `optional` rules and
//! the messages of Kubernetes' kubelet (`makeEnvironmentVariables`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Secret};

use crate::objects::Kind;

/// The ConfigMaps and Secrets one container refers to, as they were when it was about
/// to be created: the data of each, or `None` for one that does not exist.
#[derive(Clone, Debug, Default)]
pub struct EnvSources {
    namespace: String,
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

/// What `envFrom` gives a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFrom {
    /// In order: each source's keys sorted, a later source winning a name.
    pub vars: Vec<(String, String)>,
    /// Kubernetes' `InvalidEnvironmentVariableNames` event messages, one per source
    /// that had keys that are no variable names.
    pub skipped: Vec<String>,
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or
/// starting with `..`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'));
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && name != "."
        && !name.starts_with("..")
}

impl EnvSources {
    pub fn new(namespace: &str) -> EnvSources {
        EnvSources {
            namespace: namespace.to_string(),
            ..EnvSources::default()
        }
    }

    /// Environment values come from `data` only; `binaryData` is for volumes, as in
    /// Kubernetes.
    pub fn add_config_map(&mut self, name: &str, cm: Option<&ConfigMap>) {
        let data = cm.map(|cm| cm.data.clone().unwrap_or_default());
        self.config_maps.insert(name.to_string(), data);
    }

    pub fn add_secret(&mut self, name: &str, secret: Option<&Secret>) {
        let data = secret.map(|s| {
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect()
        });
        self.secrets.insert(name.to_string(), data);
    }

    fn data(&self, kind: Kind, name: &str) -> Option<&BTreeMap<String, String>> {
        let map = match kind {
            Kind::ConfigMap => &self.config_maps,
            Kind::Secret => &self.secrets,
        };
        map.get(name).and_then(Option::as_ref)
    }

    /// The container's `envFrom` variables; an error for a source that is missing and
    /// not optional.
    pub fn env_from(&self, c: &Container) -> Result<EnvFrom, String> {
        let mut out = EnvFrom::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.as_deref().unwrap_or_default();
            let (kind, name, optional, what) = if let Some(r) = &from.config_map_ref {
                (Kind::ConfigMap, &r.name, r.optional, "configMap")
            } else if let Some(r) = &from.secret_ref {
                (Kind::Secret, &r.name, r.optional, "secret")
            } else {
                continue;
            };
            let Some(data) = self.data(kind, name) else {
                if optional == Some(true) {
                    continue;
                }
                return Err(kind.not_found(name));
            };
            let mut invalid = Vec::new();
            for (key, value) in data {
                let var = format!("{prefix}{key}");
                if !is_env_var_name(&var) {
                    invalid.push(var);
                    continue;
                }
                match index.get(&var) {
                    Some(&i) => out.vars[i].1 = value.clone(),
                    None => {
                        index.insert(var.clone(), out.vars.len());
                        out.vars.push((var, value.clone()));
                    }
                }
            }
            if !invalid.is_empty() {
                invalid.sort();
                out.skipped.push(format!(
                    "Keys [{}] from the EnvFrom {what} {}/{name} were skipped since they are \
                     considered invalid environment variable names.",
                    invalid.join(", "),
                    self.namespace
                ));
            }
        }
        Ok(out)
    }

    /// The value of a `configMapKeyRef` or `secretKeyRef`: `None` when `from` is neither,
    /// `Some(Ok(None))` when the object or key is missing and the reference optional
    /// (the variable is then left out).
    pub fn key_ref(&self, from: &EnvVarSource) -> Option<Result<Option<String>, String>> {
        let (kind, name, key, optional, what) = if let Some(r) = &from.config_map_key_ref {
            (Kind::ConfigMap, &r.name, &r.key, r.optional, "ConfigMap")
        } else if let Some(r) = &from.secret_key_ref {
            (Kind::Secret, &r.name, &r.key, r.optional, "Secret")
        } else {
            return None;
        };
        let optional = optional == Some(true);
        let Some(data) = self.data(kind, name) else {
            return Some(if optional {
                Ok(None)
            } else {
                Err(kind.not_found(name))
            });
        };
        Some(match data.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {key} in {what} {}/{name}",
                self.namespace
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sources() -> EnvSources {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg"},
            "data": {"MODE": "fast", "LEVEL": "3", "bad key": "x", "1st": "y"},
            "binaryData": {"BIN": "AAE="}
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "data": {"password": "czNjcjN0", "MODE": "c2VjcmV0"}
        }))
        .unwrap();
        let mut s = EnvSources::new("shop");
        s.add_config_map("cfg", Some(&cm));
        s.add_secret("creds", Some(&secret));
        s.add_config_map("gone", None);
        s.add_secret("gone-secret", None);
        s
    }

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn env_var_names_as_kubernetes_checks_them() {
        for ok in [
            "A",
            "my.env-name",
            "MY_ENV.NAME",
            "MyEnvName1",
            "_x",
            "-x",
            ".x",
        ] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1st", "bad key", "a=b", ".", "..", "..x", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }

    #[test]
    fn env_from_with_prefix_skips_invalid_names_and_later_sources_win() {
        let c = container(json!({"name": "c", "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "APP_"},
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "gone", "optional": true}}
        ]}));
        let out = sources().env_from(&c).unwrap();
        let vars: Vec<String> = out.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            vars,
            [
                "APP_1st=y",
                "APP_LEVEL=3",
                "APP_MODE=fast",
                "LEVEL=3",
                "MODE=secret",
                "password=s3cr3t"
            ]
        );
        assert_eq!(
            out.skipped,
            [
                "Keys [APP_bad key] from the EnvFrom configMap shop/cfg were skipped since \
                 they are considered invalid environment variable names.",
                "Keys [1st, bad key] from the EnvFrom configMap shop/cfg were skipped since \
                 they are considered invalid environment variable names."
            ]
        );
        let missing = container(json!({"name": "c", "envFrom": [
            {"secretRef": {"name": "gone-secret"}}
        ]}));
        assert_eq!(
            sources().env_from(&missing).unwrap_err(),
            "secret \"gone-secret\" not found"
        );
    }

    #[test]
    fn key_refs_and_their_messages() {
        let s = sources();
        let from = |v: serde_json::Value| -> EnvVarSource { serde_json::from_value(v).unwrap() };
        let get = |v| s.key_ref(&from(v)).unwrap();
        assert_eq!(
            get(json!({"configMapKeyRef": {"name": "cfg", "key": "MODE"}})),
            Ok(Some("fast".into()))
        );
        assert_eq!(
            get(json!({"secretKeyRef": {"name": "creds", "key": "password"}})),
            Ok(Some("s3cr3t".into()))
        );
        assert_eq!(
            get(json!({"configMapKeyRef": {"name": "gone", "key": "k"}})),
            Err("configmap \"gone\" not found".into())
        );
        assert_eq!(
            get(json!({"configMapKeyRef": {"name": "cfg", "key": "BIN"}})),
            Err("couldn't find key BIN in ConfigMap shop/cfg".into())
        );
        assert_eq!(
            get(json!({"secretKeyRef": {"name": "creds", "key": "user"}})),
            Err("couldn't find key user in Secret shop/creds".into())
        );
        assert_eq!(
            get(json!({"secretKeyRef": {"name": "gone-secret", "key": "k", "optional": true}})),
            Ok(None)
        );
        assert_eq!(
            get(json!({"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}})),
            Ok(None)
        );
        assert!(
            s.key_ref(&from(json!({"fieldRef": {"fieldPath": "metadata.name"}})))
                .is_none()
        );
    }
}
