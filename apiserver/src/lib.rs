//! The MiniK8s API server: the Kubernetes core/v1 REST API over a [`Store`].
//!
//! Layers, outermost first: [`http`] parses requests and writes responses; [`registry`]
//! implements object semantics over the store; [`strategy`] holds what differs per
//! resource; [`watch_cache`] fans one store watch out to every watcher.

pub mod controllers;
pub mod discovery;
pub mod dry_run;
pub mod error;
pub mod exec;
pub mod http;
pub mod object;
pub mod patch;
pub mod printers;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod server;
pub mod services;
pub mod strategy;
pub mod watch_cache;

pub use error::{ApiError, Result};
pub use minik8s_storage::Store;
pub use server::{Server, ServerConfig, StoreConfig};
