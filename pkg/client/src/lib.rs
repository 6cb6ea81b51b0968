//! Async client for the MiniK8s API, which is the Kubernetes `core/v1` API: kubeconfig
//! loading ([`Config`], [`Kubeconfig`]), the HTTP [`Client`], typed and dynamic resource
//! APIs ([`Api`], [`DynamicApi`]), watch streams and a re-listing [`watcher`].
//!
//! Plain http only: an `https://` server is refused with [`Error::TlsNotSupported`].

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod kubeconfig;
pub mod params;
pub mod watch;
pub mod watcher;

#[cfg(test)]
mod testing;

pub use api::{Api, Deleted, DynamicApi, ObjectList};
pub use client::{ACCEPT_TABLE, Client, RawResponse, USER_AGENT};
pub use config::{CertificateAuthority, Config, KubeconfigOptions};
pub use error::{Error, Result};
pub use kubeconfig::Kubeconfig;
pub use minik8s_api::WatchEvent;
pub use params::{
    DeleteParams, FieldValidation, ListParams, LogParams, Patch, PostParams, Preconditions,
    PropagationPolicy,
};
pub use reqwest::{Method, Url};
pub use watcher::{WatcherEvent, watcher};
