//! The connection flags every verb accepts and the client built from them. Nothing is
//! read until a verb needs the server, so `version --client` and `completion` start
//! without touching the kubeconfig.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use minik8s_client::{Client, Config, KubeconfigOptions};

use crate::error::{Error, Result};

/// kubectl's global flags, accepted before or after the verb.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectionFlags {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The address and port of the API server (http://HOST:PORT).
    #[arg(short = 's', long, global = true, value_name = "ADDRESS")]
    pub server: Option<String>,

    /// Bearer token for authentication to the API server.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// How long to wait for a single server request (`30s`, `1m`; `0` waits forever).
    #[arg(long, global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,

    /// Accepted for compatibility with kubectl; this kubectl keeps no cache.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The process's streams, handed to every verb.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// `stdin` is this process's standard input: `exec` may then read it on a thread of
    /// its own and put a terminal there into raw mode.
    pub process_stdin: bool,
}

/// The connection, made on first use.
pub struct Session {
    flags: ConnectionFlags,
    client: Option<Client>,
    config: Option<Config>,
}

impl Session {
    pub fn new(flags: ConnectionFlags) -> Session {
        Session {
            flags,
            client: None,
            config: None,
        }
    }

    pub fn client(&mut self) -> Result<Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let options = KubeconfigOptions {
            path: self.flags.kubeconfig.clone(),
            context: self.flags.context.clone(),
            server: self.flags.server.clone(),
            token: self.flags.token.clone(),
            namespace: self.flags.namespace.clone(),
        };
        let mut config = Config::from_kubeconfig(&options)?;
        if let Some(timeout) = &self.flags.request_timeout {
            let timeout = parse_duration(timeout).ok_or_else(|| {
                Error::msg(format!(
                    "invalid argument {timeout:?} for \"--request-timeout\" flag: use a duration such as 30s, 1m or 0"
                ))
            })?;
            config.timeout = (!timeout.is_zero()).then_some(timeout);
        }
        let client = Client::new(config.clone())?;
        self.client = Some(client.clone());
        self.config = Some(config);
        Ok(client)
    }

    /// The configuration the client was made from (for connections the client does not
    /// make itself, such as exec's WebSocket).
    pub fn config(&mut self) -> Result<Config> {
        self.client()?;
        self.config
            .clone()
            .ok_or_else(|| Error::msg("no configuration was loaded"))
    }

    /// The namespace to work in: `-n`, else the context's, else `default`.
    pub fn namespace(&mut self) -> Result<String> {
        if let Some(ns) = self.explicit_namespace() {
            return Ok(ns.to_string());
        }
        Ok(self.client()?.default_namespace().to_string())
    }

    /// The namespace given with `-n`, if any.
    pub fn explicit_namespace(&self) -> Option<&str> {
        self.flags.namespace.as_deref().filter(|n| !n.is_empty())
    }
}

pub use minik8s_api::duration::parse_duration;
