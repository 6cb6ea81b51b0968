//! Kubernetes object types and the pure logic around them: validation, defaulting, label
//! and field selectors, quantities, manifest parsing, and the wire envelopes (watch events,
//! tables) shared by the API server and its clients. No I/O and no async here.

pub use k8s_openapi;

pub mod defaults;
pub mod duration;
pub mod events;
pub mod gojson;
pub mod manifest;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod query;
pub mod remotecommand;
pub mod resource;
pub mod selector;
pub mod table;
pub mod taskset;
pub mod validation;
pub mod watch;

pub use table::{Table, TableColumnDefinition, TableRow};
pub use watch::WatchEvent;
