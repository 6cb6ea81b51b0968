//! The kubeconfig file: reading, merging several the way kubectl does, and writing one.
//! Choosing a context and turning it into a [`Config`](crate::Config) is `config.rs`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_context: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: Cluster,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// Base64 of PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub context: Context,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: User,
}

/// The credentials of a kubeconfig user. Only bearer tokens are used by this client;
/// client certificates and exec plugins are read so that their presence can be reported.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<serde_yaml::Value>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_data",
                &self.client_certificate_data.as_ref().map(|_| "<redacted>"),
            )
            .field("exec", &self.exec.is_some())
            .finish()
    }
}

/// `clusters: null` is what kubectl writes for an empty list.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Kubeconfig {
    /// A kubeconfig with one cluster, user and context, all called `name`, and that
    /// context current: what `minik8s up` hands to the user.
    pub fn for_server(name: &str, server: &str, token: Option<&str>) -> Kubeconfig {
        Kubeconfig {
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            clusters: vec![NamedCluster {
                name: name.into(),
                cluster: Cluster {
                    server: Some(server.into()),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: name.into(),
                context: Context {
                    cluster: name.into(),
                    user: name.into(),
                    namespace: None,
                },
            }],
            users: vec![NamedUser {
                name: name.into(),
                user: User {
                    token: token.map(str::to_string),
                    ..User::default()
                },
            }],
            current_context: Some(name.into()),
        }
    }

    /// Reads one file. Relative file references inside it (certificate authority, token
    /// file) are made absolute against the file's folder, as kubectl does.
    pub fn load(path: &Path) -> Result<Kubeconfig> {
        let text = fs::read_to_string(path).map_err(|source| Error::ReadFile {
            what: "kubeconfig",
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Kubeconfig::parse(&text).map_err(|source| Error::ParseKubeconfig {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    pub fn parse(text: &str) -> std::result::Result<Kubeconfig, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Kubeconfig::default());
        }
        serde_yaml::from_str(text)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut Option<String>| {
            if let Some(path) = p.as_mut() {
                if !path.is_empty() && Path::new(path.as_str()).is_relative() {
                    *path = dir.join(path.as_str()).to_string_lossy().into_owned();
                }
            }
        };
        for c in &mut self.clusters {
            resolve(&mut c.cluster.certificate_authority);
        }
        for u in &mut self.users {
            resolve(&mut u.user.token_file);
            resolve(&mut u.user.client_certificate);
        }
    }

    /// Merges files in order: the first file to define a cluster, context or user name
    /// wins it whole, and the first file that sets `current-context` sets it.
    pub fn merge(configs: impl IntoIterator<Item = Kubeconfig>) -> Kubeconfig {
        let mut merged = Kubeconfig::default();
        for config in configs {
            if merged.api_version.is_none() {
                merged.api_version = config.api_version;
            }
            if merged.kind.is_none() {
                merged.kind = config.kind;
            }
            if merged.current_context.as_deref().is_none_or(str::is_empty) {
                merged.current_context = config.current_context;
            }
            for c in config.clusters {
                if !merged.clusters.iter().any(|m| m.name == c.name) {
                    merged.clusters.push(c);
                }
            }
            for c in config.contexts {
                if !merged.contexts.iter().any(|m| m.name == c.name) {
                    merged.contexts.push(c);
                }
            }
            for u in config.users {
                if !merged.users.iter().any(|m| m.name == u.name) {
                    merged.users.push(u);
                }
            }
        }
        merged
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.cluster)
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.context)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name).map(|u| &u.user)
    }

    pub fn to_yaml(&self) -> String {
        // Plain strings, bools and vectors: serialization cannot fail.
        serde_yaml::to_string(self).expect("a kubeconfig serializes to YAML")
    }

    /// Writes the file readable by its owner only (it holds a token), creating its folder.
    /// The new content replaces the old in one rename, so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let write_err = |source| Error::WriteFile {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(write_err)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            #[cfg(unix)]
            {
                // `mode` is filtered by the umask and ignored for an existing file.
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
            }
            file.write_all(self.to_yaml().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kubectl_written_file() {
        let text = r#"
apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: dev
  cluster:
    server: http://10.0.0.1:6443
    certificate-authority-data: Zm9v
    insecure-skip-tls-verify: true
    extensions: []
contexts:
- name: dev
  context:
    cluster: dev
    user: alice
    namespace: team-a
current-context: dev
users:
- name: alice
  user:
    token: s3cret
    tokenFile: tok
"#;
        let config = Kubeconfig::parse(text).unwrap();
        let cluster = config.cluster("dev").unwrap();
        assert_eq!(cluster.server.as_deref(), Some("http://10.0.0.1:6443"));
        assert!(cluster.insecure_skip_tls_verify);
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Zm9v"));
        let context = config.context("dev").unwrap();
        assert_eq!(context.user, "alice");
        assert_eq!(context.namespace.as_deref(), Some("team-a"));
        let user = config.user("alice").unwrap();
        assert_eq!(user.token.as_deref(), Some("s3cret"));
        assert_eq!(user.token_file.as_deref(), Some("tok"));
        assert!(!format!("{user:?}").contains("s3cret"));
    }

    #[test]
    fn nulls_and_empty_files_are_empty() {
        let config = Kubeconfig::parse("clusters: null\ncontexts: null\nusers: null\n").unwrap();
        assert!(config.clusters.is_empty() && config.contexts.is_empty());
        assert_eq!(Kubeconfig::parse("  \n").unwrap(), Kubeconfig::default());
    }

    #[test]
    fn first_file_wins_per_name() {
        let a = Kubeconfig::parse(
            "clusters:\n- name: c\n  cluster: {server: http://a}\nusers:\n- name: u\n  user: {token: ta}\n",
        )
        .unwrap();
        let b = Kubeconfig::parse(
            "current-context: x\nclusters:\n- name: c\n  cluster: {server: http://b}\n- name: d\n  cluster: {server: http://d}\n",
        )
        .unwrap();
        let c = Kubeconfig::parse("current-context: y\n").unwrap();
        let merged = Kubeconfig::merge([a, b, c]);
        assert_eq!(
            merged.cluster("c").unwrap().server.as_deref(),
            Some("http://a")
        );
        assert_eq!(
            merged.cluster("d").unwrap().server.as_deref(),
            Some("http://d")
        );
        assert_eq!(merged.user("u").unwrap().token.as_deref(), Some("ta"));
        assert_eq!(merged.current_context.as_deref(), Some("x"));
    }

    #[test]
    fn relative_paths_are_resolved_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(
            &path,
            "clusters:\n- name: c\n  cluster: {certificate-authority: ca.pem}\nusers:\n- name: u\n  user: {tokenFile: /abs/tok}\n",
        )
        .unwrap();
        let config = Kubeconfig::load(&path).unwrap();
        assert_eq!(
            config
                .cluster("c")
                .unwrap()
                .certificate_authority
                .as_deref(),
            Some(dir.path().join("ca.pem").to_str().unwrap())
        );
        assert_eq!(
            config.user("u").unwrap().token_file.as_deref(),
            Some("/abs/tok")
        );
    }

    #[test]
    fn write_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config");
        let config = Kubeconfig::for_server("minik8s", "http://127.0.0.1:6443", Some("t0k"));
        config.write(&path).unwrap();
        // Rewriting over an existing file keeps it private too.
        config.write(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(Kubeconfig::load(&path).unwrap(), config);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("config")]);
    }

    #[test]
    fn parse_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        fs::write(&path, "clusters: [ {").unwrap();
        let err = Kubeconfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("cannot parse kubeconfig"), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
}
