//! Pods: turning a pod's spec into containers (`spec`, with the variables of
//! `config_env` and `service_env`), running and watching them (the `worker`, with its
//! `probe`s), and reporting on them (`status`).

pub mod api;
pub mod config_env;
pub mod probe;
pub mod service_env;
pub mod spec;
pub mod status;
pub mod worker;

pub use api::{ClientPodApi, PodApi};
pub use worker::{Next, PodWorker, WorkerEnv};
