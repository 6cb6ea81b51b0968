//! Every pod's `/etc/resolv.conf`, formed per `dnsPolicy` as Kubernetes' kubelet forms it
//! (`pkg/kubelet/network/dns`) and written as the CRI runtimes write it: `search`, one
//! `nameserver` line per server, `options`.
//!
//! * `ClusterFirst` (the default): the cluster DNS as the only nameserver, the search
//!   path `<ns>.svc.<domain> svc.<domain> <domain>` then the host's, `options ndots:5`;
//! * `Default`: the host's resolver configuration (`--resolv-conf`) — and so is
//!   `ClusterFirst` for a `hostNetwork` pod, or without `--cluster-dns` (then with a
//!   `MissingClusterDNS` warning);
//! * `ClusterFirstWithHostNet`: `ClusterFirst`, `hostNetwork` or not;
//! * `None`: nothing but `dnsConfig`.
//!
//! `dnsConfig` is merged into every policy: nameservers and searches appended without
//! duplicates, options by name (its value wins). Then Kubernetes' limits: three
//! nameservers, 32 search domains of at most 253 characters and 2048 in all, the rest
//! left out with a `DNSConfigForming` warning.
//!
//! The file is `<pod dir>/resolv.conf`, bind-mounted into every container of the pod
//! (unless the container mounts something there itself) and rewritten in place, like
//! the hosts file ([`crate::hosts::write_in_place`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use crate::pod::spec::spec;

/// The file's name in the pod's directory.
pub const RESOLV_FILE: &str = "resolv.conf";
/// Where it is mounted.
pub const MOUNT_PATH: &str = "/etc/resolv.conf";

/// Kubernetes' limits (`pkg/apis/core/validation`), which libc's resolvers impose.
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// A longer search domain makes some resolvers (glibc 2.28) abort.
const MAX_SEARCH_DOMAIN_CHARS: usize = 253;
/// `ClusterFirst`'s options.
const DEFAULT_OPTIONS: &str = "ndots:5";

/// A resolver configuration: what `resolv.conf` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Reads a `resolv.conf` as Kubernetes' kubelet does: `nameserver` lines add, the
    /// last `search` line wins (without `.` and trailing dots), `options` add (a later
    /// option of the same name replaces the earlier); comments start with `#` or `;`.
    pub fn parse(text: &str) -> DnsConfig {
        let mut out = DnsConfig::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    if let Some(server) = fields.next() {
                        out.servers.push(server.to_string());
                    }
                }
                Some("search") => {
                    out.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_string())
                        .collect();
                }
                Some("options") => {
                    for option in fields {
                        let name = option_name(option);
                        out.options.retain(|o| option_name(o) != name);
                        out.options.push(option.to_string());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The file, as the CRI runtimes write it; empty when there is nothing to say.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.servers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn option_name(option: &str) -> &str {
    option.split_once(':').map_or(option, |(name, _)| name)
}

/// The kubelet's DNS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDns {
    /// `--cluster-dns`.
    pub cluster_dns: Option<Ipv4Addr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--resolv-conf`; `None` when set empty.
    pub resolv_conf: Option<PathBuf>,
}

impl Default for PodDns {
    fn default() -> Self {
        PodDns {
            cluster_dns: Some(crate::config::DEFAULT_CLUSTER_DNS),
            cluster_domain: crate::config::DEFAULT_CLUSTER_DOMAIN.into(),
            resolv_conf: Some(PathBuf::from(crate::config::DEFAULT_RESOLV_CONF)),
        }
    }
}

/// A warning to record about the pod: reason and message.
pub type Warning = (&'static str, String);

/// The effective policy, as Kubernetes' `getPodDNSType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Cluster,
    Host,
    None,
}

fn policy(pod: &Pod) -> Policy {
    let s = spec(pod);
    match s.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "None" => Policy::None,
        "ClusterFirstWithHostNet" => Policy::Cluster,
        "Default" => Policy::Host,
        // ClusterFirst, and what validation lets through by mistake.
        _ if s.host_network == Some(true) => Policy::Host,
        _ => Policy::Cluster,
    }
}

impl PodDns {
    /// The host's configuration: `--resolv-conf` read, or Kubernetes' stand-in when the
    /// flag is empty (a local nameserver, search `.`). A file that cannot be read counts
    /// as empty, with the error.
    pub fn host_config(&self) -> (DnsConfig, Option<String>) {
        match &self.resolv_conf {
            None => (
                DnsConfig {
                    servers: vec!["127.0.0.1".into()],
                    searches: vec![".".into()],
                    options: Vec::new(),
                },
                None,
            ),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => (DnsConfig::parse(&text), None),
                Err(e) => (
                    DnsConfig::default(),
                    Some(format!("reading {}: {e}", path.display())),
                ),
            },
        }
    }

    /// The pod's resolver configuration, given the host's, and the warnings Kubernetes
    /// would record about the pod.
    pub fn pod_config(&self, pod: &Pod, host: &DnsConfig) -> (DnsConfig, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut config = match policy(pod) {
            Policy::None => DnsConfig::default(),
            Policy::Cluster => match self.cluster_dns {
                Some(ip) => {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                    let domain = &self.cluster_domain;
                    let mut searches = if domain.is_empty() {
                        Vec::new()
                    } else {
                        vec![
                            format!("{namespace}.svc.{domain}"),
                            format!("svc.{domain}"),
                            domain.clone(),
                        ]
                    };
                    searches.extend(host.searches.iter().cloned());
                    DnsConfig {
                        servers: vec![ip.to_string()],
                        searches: without_duplicates(searches),
                        options: vec![DEFAULT_OPTIONS.into()],
                    }
                }
                None => {
                    warnings.push((
                        "MissingClusterDNS",
                        format!(
                            "pod: \"{}\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                            pod_text(pod)
                        ),
                    ));
                    host.clone()
                }
            },
            Policy::Host => host.clone(),
        };
        if let Some(extra) = &spec(pod).dns_config {
            merge(&mut config, extra);
        }
        fit_limits(&mut config, &mut warnings);
        (config, warnings)
    }

    /// Writes the pod's file in place under `root_dir` and returns its path and the
    /// warnings to record.
    pub fn write(&self, root_dir: &Path, pod: &Pod) -> std::io::Result<(PathBuf, Vec<Warning>)> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let path = crate::pod::spec::pod_dir(root_dir, uid).join(RESOLV_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (host, error) = self.host_config();
        if let Some(e) = error {
            tracing::warn!(error = %e, "the host's resolver configuration");
        }
        let (config, warnings) = self.pod_config(pod, &host);
        crate::hosts::write_in_place(&path, &config.render())?;
        Ok((path, warnings))
    }
}

/// `format.Pod`: `name_namespace(uid)`.
fn pod_text(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn without_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Kubernetes' `appendDNSConfig`. Options are kept in order of first appearance
/// (Kubernetes' map gives them in no fixed order).
fn merge(config: &mut DnsConfig, extra: &PodDNSConfig) {
    let mut servers = std::mem::take(&mut config.servers);
    servers.extend(extra.nameservers.iter().flatten().cloned());
    config.servers = without_duplicates(servers);
    let mut searches = std::mem::take(&mut config.searches);
    searches.extend(extra.searches.iter().flatten().cloned());
    config.searches = without_duplicates(searches);
    let mut options: Vec<(String, String)> = config
        .options
        .iter()
        .map(|o| match o.split_once(':') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (o.clone(), String::new()),
        })
        .collect();
    for o in extra.options.iter().flatten() {
        let name = o.name.clone().unwrap_or_default();
        let value = o.value.clone().unwrap_or_default();
        match options.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => options.push((name, value)),
        }
    }
    config.options = options
        .into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect();
}

/// Kubernetes' `formDNSConfigFitsLimits`.
fn fit_limits(config: &mut DnsConfig, warnings: &mut Vec<Warning>) {
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                config.servers.join(" ")
            ),
        ));
    }
    let mut exceeded = false;
    if config.searches.len() > MAX_SEARCH_PATHS {
        config.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = config.searches.len();
    config
        .searches
        .retain(|s| s.len() <= MAX_SEARCH_DOMAIN_CHARS);
    exceeded |= config.searches.len() != before;
    let mut line = config.searches.join(" ").len();
    if line > MAX_SEARCH_LIST_CHARS {
        while line > MAX_SEARCH_LIST_CHARS {
            let Some(last) = config.searches.pop() else {
                break;
            };
            line = line.saturating_sub(last.len() + 1);
        }
        exceeded = true;
    }
    if exceeded {
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                config.searches.join(" ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests;
