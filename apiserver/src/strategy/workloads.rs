//! Strategies of the kinds whose rules are only "decode, default, validate": the workload
//! kinds, ControllerRevisions, ConfigMaps and Secrets. One generic strategy holds the
//! shared steps; each kind supplies its defaulting and validation functions.

use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ReplicationController, Secret};
use minik8s_api::defaults;
use minik8s_api::resource::{self, ResourceInfo};
use minik8s_api::validation::{self, FieldError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Part, Strategy, check, decode, encode, merge_parts};
use crate::error::Result;

/// A kind's defaulting, its create-time preparation and its validation.
pub struct Typed<K> {
    info: &'static ResourceInfo,
    /// Applied on every create and every update of the object itself.
    default: fn(&mut K),
    /// Applied once, on create, after `default` (a Job's generated selector).
    on_create: fn(&mut K),
    validate: fn(&K) -> Vec<FieldError>,
    validate_update: fn(&K, &K) -> Vec<FieldError>,
    _kind: PhantomData<fn() -> K>,
}

fn nothing<K>(_: &mut K) {}

impl<K> Typed<K> {
    const fn new(
        info: &'static ResourceInfo,
        default: fn(&mut K),
        validate: fn(&K) -> Vec<FieldError>,
        validate_update: fn(&K, &K) -> Vec<FieldError>,
    ) -> Self {
        Typed {
            info,
            default,
            on_create: nothing::<K>,
            validate,
            validate_update,
            _kind: PhantomData,
        }
    }

    const fn on_create(mut self, f: fn(&mut K)) -> Self {
        self.on_create = f;
        self
    }
}

impl<K> Strategy for Typed<K>
where
    K: Serialize + DeserializeOwned + 'static,
{
    fn info(&self) -> &'static ResourceInfo {
        self.info
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<K>(self.info, obj)?)
    }

    fn prepare_create(&self, mut obj: Value) -> Result<Value> {
        // What the controllers report is theirs to write, from the start.
        if self.info.has_status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        let mut k: K = decode(self.info, obj)?;
        (self.default)(&mut k);
        (self.on_create)(&mut k);
        let v = encode(&k)?;
        check(self.info, &v, (self.validate)(&k))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let old_k: K = decode(self.info, old.clone())?;
        let mut k: K = decode(self.info, merge_parts(old, new, part))?;
        if part == Part::Main {
            (self.default)(&mut k);
        }
        let v = encode(&k)?;
        check(self.info, &v, (self.validate_update)(&old_k, &k))?;
        Ok(v)
    }
}

pub static CONFIG_MAPS: Typed<ConfigMap> = Typed::new(
    &resource::CONFIG_MAPS,
    nothing,
    validation::validate_config_map,
    validation::validate_config_map_update,
);

pub static SECRETS: Typed<Secret> = Typed::new(
    &resource::SECRETS,
    defaults::default_secret,
    validation::validate_secret,
    validation::validate_secret_update,
);

pub static REPLICATION_CONTROLLERS: Typed<ReplicationController> = Typed::new(
    &resource::REPLICATION_CONTROLLERS,
    defaults::default_replication_controller,
    validation::validate_replication_controller,
    |_, new| validation::validate_replication_controller(new),
);

pub static DEPLOYMENTS: Typed<Deployment> = Typed::new(
    &resource::DEPLOYMENTS,
    defaults::default_deployment,
    validation::validate_deployment,
    validation::validate_deployment_update,
);

pub static REPLICA_SETS: Typed<ReplicaSet> = Typed::new(
    &resource::REPLICA_SETS,
    defaults::default_replica_set,
    validation::validate_replica_set,
    validation::validate_replica_set_update,
);

pub static STATEFUL_SETS: Typed<StatefulSet> = Typed::new(
    &resource::STATEFUL_SETS,
    defaults::default_stateful_set,
    validation::validate_stateful_set,
    validation::validate_stateful_set_update,
);

pub static DAEMON_SETS: Typed<DaemonSet> = Typed::new(
    &resource::DAEMON_SETS,
    defaults::default_daemon_set,
    validation::validate_daemon_set,
    validation::validate_daemon_set_update,
);

pub static CONTROLLER_REVISIONS: Typed<ControllerRevision> = Typed::new(
    &resource::CONTROLLER_REVISIONS,
    nothing,
    validation::validate_controller_revision,
    |_, new| validation::validate_controller_revision(new),
);

pub static JOBS: Typed<Job> = Typed::new(
    &resource::JOBS,
    defaults::default_job,
    validation::validate_job,
    validation::validate_job_update,
)
.on_create(defaults::select_job_pods);
