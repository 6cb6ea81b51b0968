//! Where the client connects and as whom: read from kubeconfig files the way kubectl
//! finds them (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`), then
//! overridden by flags.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::Url;

use crate::error::{Error, Result};
use crate::kubeconfig::Kubeconfig;

pub const DEFAULT_NAMESPACE: &str = "default";
/// The limit for one ordinary request. Watches and log streams have none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to load, and the flags that override what was loaded (`--kubeconfig`,
/// `--context`, `--server`, `--token`, `--namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeconfigOptions {
    pub path: Option<PathBuf>,
    pub context: Option<String>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

/// A cluster's certificate authority. Kept so that the configuration is complete, but
/// this client speaks plain http only and never uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateAuthority {
    File(PathBuf),
    Pem(Vec<u8>),
}

#[derive(Clone)]
pub struct Config {
    pub server: Url,
    pub token: Option<String>,
    /// The namespace used when a request does not name one.
    pub namespace: String,
    /// The limit for one ordinary request; `None` waits forever. Never applied to watches
    /// and log streams.
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub insecure_skip_tls_verify: bool,
    pub certificate_authority: Option<CertificateAuthority>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("certificate_authority", &self.certificate_authority)
            .finish()
    }
}

/// Parses a server address; a bare `host:port` means `http://host:port`.
pub fn parse_server(server: &str) -> Result<Url> {
    let server = server.trim();
    if server.is_empty() {
        return Err(Error::Config("the server address is empty".into()));
    }
    let with_scheme = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Error::Config(format!("server address \"{server}\" is not valid: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "server address \"{server}\" has no host"
        )));
    }
    Ok(url)
}

impl Config {
    /// A configuration for `server` with defaults for everything else.
    pub fn new(server: Url) -> Config {
        Config {
            server,
            token: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            timeout: Some(DEFAULT_TIMEOUT),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            insecure_skip_tls_verify: false,
            certificate_authority: None,
        }
    }

    /// The configuration kubectl would use with no flags.
    pub fn infer() -> Result<Config> {
        Config::from_kubeconfig(&KubeconfigOptions::default())
    }

    pub fn from_kubeconfig(options: &KubeconfigOptions) -> Result<Config> {
        let env = Env {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home: std::env::var_os("HOME").map(PathBuf::from),
        };
        from_kubeconfig_in(options, &env)
    }
}

/// The process environment that kubeconfig loading reads, passed in so that tests do
/// not have to change the process's own.
#[derive(Clone, Debug, Default)]
struct Env {
    kubeconfig: Option<OsString>,
    home: Option<PathBuf>,
}

/// The files that were read, in precedence order, and a description of where they were
/// looked for (for the error when there are none).
struct Sources {
    files: Vec<(PathBuf, Kubeconfig)>,
    searched: String,
}

impl Sources {
    fn describe(&self) -> String {
        self.files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn find_sources(options: &KubeconfigOptions, env: &Env) -> Result<Sources> {
    if let Some(path) = &options.path {
        // An explicit file must exist.
        return Ok(Sources {
            files: vec![(path.clone(), Kubeconfig::load(path)?)],
            searched: path.display().to_string(),
        });
    }
    if let Some(list) = env.kubeconfig.as_ref().filter(|v| !v.is_empty()) {
        let mut files: Vec<(PathBuf, Kubeconfig)> = Vec::new();
        for path in std::env::split_paths(list) {
            if path.as_os_str().is_empty() || files.iter().any(|(p, _)| *p == path) {
                continue;
            }
            // Like kubectl, files named in KUBECONFIG that do not exist are skipped.
            if let Some(config) = load_if_present(&path)? {
                files.push((path, config));
            }
        }
        return Ok(Sources {
            files,
            searched: format!("KUBECONFIG={}", list.to_string_lossy()),
        });
    }
    let Some(home) = &env.home else {
        return Ok(Sources {
            files: Vec::new(),
            searched: "~/.kube/config (HOME is not set)".into(),
        });
    };
    let path = home.join(".kube").join("config");
    let files = match load_if_present(&path)? {
        Some(config) => vec![(path.clone(), config)],
        None => Vec::new(),
    };
    Ok(Sources {
        files,
        searched: path.display().to_string(),
    })
}

fn load_if_present(path: &Path) -> Result<Option<Kubeconfig>> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        _ => Kubeconfig::load(path).map(Some),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn from_kubeconfig_in(options: &KubeconfigOptions, env: &Env) -> Result<Config> {
    let sources = find_sources(options, env)?;
    let origin = sources.describe();
    let server_override = non_empty(options.server.as_deref());
    let token_override = non_empty(options.token.as_deref());

    let overrides_only = |server: &str| -> Result<Config> {
        let mut config = Config::new(parse_server(server)?);
        config.token = token_override.map(str::to_string);
        config.namespace = non_empty(options.namespace.as_deref())
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        Ok(config)
    };

    if sources.files.is_empty() {
        return match server_override {
            Some(server) => overrides_only(server),
            None => Err(Error::Config(format!(
                "no configuration has been provided: no kubeconfig found at {}; \
                 pass --kubeconfig or --server, set KUBECONFIG, or start a cluster with \
                 \"minik8s up\", which writes one",
                sources.searched
            ))),
        };
    }
    let merged = Kubeconfig::merge(sources.files.into_iter().map(|(_, k)| k));

    let context_name = non_empty(options.context.as_deref())
        .or(non_empty(merged.current_context.as_deref()))
        .map(str::to_string);
    let Some(context_name) = context_name else {
        return match server_override {
            Some(server) => overrides_only(server),
            None => Err(Error::Config(format!(
                "current-context is not set in kubeconfig {origin}; pass --context, or \
                 --server to name the server directly"
            ))),
        };
    };
    let context = merged.context(&context_name).ok_or_else(|| {
        Error::Config(format!(
            "context \"{context_name}\" not found in kubeconfig {origin}"
        ))
    })?;

    let cluster = if context.cluster.is_empty() {
        None
    } else {
        let cluster = merged.cluster(&context.cluster);
        if cluster.is_none() && server_override.is_none() {
            return Err(Error::Config(format!(
                "cluster \"{}\" (of context \"{context_name}\") not found in kubeconfig {origin}",
                context.cluster
            )));
        }
        cluster
    };

    let server = match server_override {
        Some(server) => server.to_string(),
        None => match cluster.and_then(|c| non_empty(c.server.as_deref())) {
            Some(server) => server.to_string(),
            None if context.cluster.is_empty() => {
                return Err(Error::Config(format!(
                    "context \"{context_name}\" in kubeconfig {origin} names no cluster, \
                     so no server is set; pass --server"
                )));
            }
            None => {
                return Err(Error::Config(format!(
                    "cluster \"{}\" in kubeconfig {origin} has no server defined",
                    context.cluster
                )));
            }
        },
    };
    let mut config = Config::new(parse_server(&server)?);

    if let Some(cluster) = cluster {
        config.insecure_skip_tls_verify = cluster.insecure_skip_tls_verify;
        config.certificate_authority =
            if let Some(data) = non_empty(cluster.certificate_authority_data.as_deref()) {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        Error::Config(format!(
                            "certificate-authority-data of cluster \"{}\" in kubeconfig {origin} \
                         is not valid base64: {e}",
                            context.cluster
                        ))
                    })?;
                Some(CertificateAuthority::Pem(pem))
            } else {
                non_empty(cluster.certificate_authority.as_deref())
                    .map(|p| CertificateAuthority::File(PathBuf::from(p)))
            };
    }

    config.token = match token_override {
        Some(token) => Some(token.to_string()),
        None if context.user.is_empty() => None,
        None => {
            let user = merged.user(&context.user).ok_or_else(|| {
                Error::Config(format!(
                    "user \"{}\" (of context \"{context_name}\") not found in kubeconfig {origin}",
                    context.user
                ))
            })?;
            if let Some(token) = non_empty(user.token.as_deref()) {
                Some(token.to_string())
            } else if let Some(file) = non_empty(user.token_file.as_deref()) {
                let token = fs::read_to_string(file).map_err(|source| Error::ReadFile {
                    what: "token file",
                    path: PathBuf::from(file),
                    source,
                })?;
                Some(token.trim().to_string()).filter(|t| !t.is_empty())
            } else {
                if user.client_certificate.is_some()
                    || user.client_certificate_data.is_some()
                    || user.exec.is_some()
                {
                    tracing::warn!(
                        user = %context.user,
                        "kubeconfig user authenticates with client certificates or an exec \
                         plugin, which this client does not support; sending no credentials"
                    );
                }
                None
            }
        }
    };

    config.namespace = non_empty(options.namespace.as_deref())
        .or(non_empty(context.namespace.as_deref()))
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "http://10.0.0.1:6443"}
- name: prod
  cluster:
    server: https://prod.example:6443
    certificate-authority-data: LS0tLS1CRUdJTg==
contexts:
- name: dev
  context: {cluster: dev, user: dev-user, namespace: team-a}
- name: prod
  context: {cluster: prod, user: prod-user}
users:
- name: dev-user
  user: {token: dev-token}
- name: prod-user
  user: {tokenFile: prod-token}
"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn env_list(paths: &[&Path]) -> Env {
        Env {
            kubeconfig: Some(std::env::join_paths(paths).unwrap()),
            home: None,
        }
    }

    fn config_err(options: &KubeconfigOptions, env: &Env) -> String {
        from_kubeconfig_in(options, env).unwrap_err().to_string()
    }

    #[test]
    fn current_context_selects_cluster_user_and_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let options = KubeconfigOptions {
            path: Some(path),
            ..Default::default()
        };
        let config = from_kubeconfig_in(&options, &Env::default()).unwrap();
        assert_eq!(config.server.as_str(), "http://10.0.0.1:6443/");
        assert_eq!(config.token.as_deref(), Some("dev-token"));
        assert_eq!(config.namespace, "team-a");
        assert_eq!(config.certificate_authority, None);
        assert!(!format!("{config:?}").contains("dev-token"));
    }

    #[test]
    fn context_flag_token_file_and_ca_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        write(dir.path(), "prod-token", "prod-secret\n");
        let options = KubeconfigOptions {
            path: Some(path),
            context: Some("prod".into()),
            ..Default::default()
        };
        let config = from_kubeconfig_in(&options, &Env::default()).unwrap();
        assert_eq!(config.server.scheme(), "https");
        // The token file is named relative to the kubeconfig's folder.
        assert_eq!(config.token.as_deref(), Some("prod-secret"));
        assert_eq!(config.namespace, "default");
        assert_eq!(
            config.certificate_authority,
            Some(CertificateAuthority::Pem(b"-----BEGIN".to_vec()))
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let options = KubeconfigOptions {
            path: Some(path),
            context: None,
            server: Some("127.0.0.1:8080".into()),
            token: Some("flag-token".into()),
            namespace: Some("kube-system".into()),
        };
        let config = from_kubeconfig_in(&options, &Env::default()).unwrap();
        assert_eq!(config.server.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.token.as_deref(), Some("flag-token"));
        assert_eq!(config.namespace, "kube-system");
    }

    #[test]
    fn kubeconfig_list_is_merged_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            dir.path(),
            "a",
            "clusters:\n- name: dev\n  cluster: {server: \"http://first:1\"}\n",
        );
        let second = write(dir.path(), "b", TWO_CONTEXTS);
        let missing = dir.path().join("missing");
        let env = env_list(&[&missing, &first, &second]);
        let config = from_kubeconfig_in(&KubeconfigOptions::default(), &env).unwrap();
        // current-context and the user come from the second file, the cluster from the
        // first, which defined "dev" first.
        assert_eq!(config.server.as_str(), "http://first:1/");
        assert_eq!(config.token.as_deref(), Some("dev-token"));

        // The first file that sets current-context wins it.
        let third = write(
            dir.path(),
            "c",
            "current-context: prod\ncontexts:\n- name: prod\n  context: {cluster: dev}\n",
        );
        let env = env_list(&[&third, &second]);
        let config = from_kubeconfig_in(&KubeconfigOptions::default(), &env).unwrap();
        assert_eq!(config.server.as_str(), "http://10.0.0.1:6443/");
        assert_eq!(config.token, None);
    }

    #[test]
    fn explicit_path_beats_kubeconfig_env_and_home() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = write(
            dir.path(),
            "explicit",
            "current-context: x\nclusters:\n- {name: x, cluster: {server: \"http://explicit:1\"}}\ncontexts:\n- {name: x, context: {cluster: x}}\n",
        );
        let from_env = write(dir.path(), "env", TWO_CONTEXTS);
        let env = Env {
            kubeconfig: Some(from_env.clone().into_os_string()),
            home: Some(dir.path().to_path_buf()),
        };
        let options = KubeconfigOptions {
            path: Some(explicit),
            ..Default::default()
        };
        let config = from_kubeconfig_in(&options, &env).unwrap();
        assert_eq!(config.server.host_str(), Some("explicit"));
        let config = from_kubeconfig_in(&KubeconfigOptions::default(), &env).unwrap();
        assert_eq!(config.server.host_str(), Some("10.0.0.1"));
    }

    #[test]
    fn home_kube_config_is_the_fallback() {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir(home.path().join(".kube")).unwrap();
        write(&home.path().join(".kube"), "config", TWO_CONTEXTS);
        let env = Env {
            kubeconfig: Some(OsString::new()),
            home: Some(home.path().to_path_buf()),
        };
        let config = from_kubeconfig_in(&KubeconfigOptions::default(), &env).unwrap();
        assert_eq!(config.token.as_deref(), Some("dev-token"));
    }

    #[test]
    fn missing_things_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let with = |context: &str| KubeconfigOptions {
            path: Some(path.clone()),
            context: Some(context.into()),
            ..Default::default()
        };
        let err = config_err(&with("nope"), &Env::default());
        assert_eq!(
            err,
            format!(
                "invalid configuration: context \"nope\" not found in kubeconfig {}",
                path.display()
            )
        );

        let broken = write(
            dir.path(),
            "broken",
            "current-context: a\ncontexts:\n- {name: a, context: {cluster: c, user: u}}\n\
             - {name: b, context: {cluster: gone}}\nclusters:\n- {name: c, cluster: {}}\n",
        );
        let options = KubeconfigOptions {
            path: Some(broken.clone()),
            ..Default::default()
        };
        let err = config_err(&options, &Env::default());
        assert!(err.contains("cluster \"c\""), "{err}");
        assert!(err.contains("has no server defined"), "{err}");
        assert!(err.contains(broken.to_str().unwrap()), "{err}");

        let options = KubeconfigOptions {
            context: Some("b".into()),
            ..options
        };
        let err = config_err(&options, &Env::default());
        assert!(err.contains("cluster \"gone\""), "{err}");
        assert!(err.contains("not found"), "{err}");

        let err = config_err(
            &KubeconfigOptions {
                path: Some(dir.path().join("absent")),
                ..Default::default()
            },
            &Env::default(),
        );
        assert!(err.starts_with("cannot read kubeconfig"), "{err}");
        assert!(err.contains("absent"), "{err}");
    }

    #[test]
    fn missing_user_is_an_error_unless_a_token_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config",
            "current-context: a\ncontexts:\n- {name: a, context: {cluster: c, user: ghost}}\n\
             clusters:\n- {name: c, cluster: {server: \"http://h:1\"}}\n",
        );
        let mut options = KubeconfigOptions {
            path: Some(path),
            ..Default::default()
        };
        let err = config_err(&options, &Env::default());
        assert!(err.contains("user \"ghost\""), "{err}");
        options.token = Some("t".into());
        let config = from_kubeconfig_in(&options, &Env::default()).unwrap();
        assert_eq!(config.token.as_deref(), Some("t"));
    }

    #[test]
    fn no_configuration_reads_like_kubectl() {
        let home = tempfile::tempdir().unwrap();
        let env = Env {
            kubeconfig: None,
            home: Some(home.path().to_path_buf()),
        };
        let err = config_err(&KubeconfigOptions::default(), &env);
        assert!(
            err.starts_with("invalid configuration: no configuration has been provided"),
            "{err}"
        );
        assert!(err.contains(".kube/config"), "{err}");

        // A server flag alone is enough.
        let options = KubeconfigOptions {
            server: Some("http://localhost:6443".into()),
            ..Default::default()
        };
        let config = from_kubeconfig_in(&options, &env).unwrap();
        assert_eq!(config.server.port(), Some(6443));
        assert_eq!(config.namespace, "default");
        assert_eq!(config.token, None);
    }

    #[test]
    fn file_without_current_context_needs_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config",
            "clusters:\n- {name: c, cluster: {server: \"http://h:1\"}}\n",
        );
        let options = KubeconfigOptions {
            path: Some(path),
            ..Default::default()
        };
        let err = config_err(&options, &Env::default());
        assert!(err.contains("current-context is not set"), "{err}");
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            parse_server("localhost:8080").unwrap().as_str(),
            "http://localhost:8080/"
        );
        assert_eq!(
            parse_server("http://[::1]:6443").unwrap().host_str(),
            Some("[::1]")
        );
        assert!(parse_server("").is_err());
        assert!(parse_server("http://").is_err());
    }
}
