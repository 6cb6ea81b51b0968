//! Starting things: the pause container, images as their pull policy says, and new
//! attempts of init and app containers, each step reported as an event and, when it
//! fails, as the reason the container waits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};

use super::{Pass, PodWorker, field_path, grace_period, pod_ip, pod_label};
use crate::backoff::go_duration;
use crate::events::{NORMAL, WARNING, pod_reference};
use crate::labels::{self, ContainerKey, Role};
use crate::pod::config_env::EnvSources;
use crate::pod::spec::{self, Downward, spec};
use crate::runtime::{
    BindMount, ContainerConfig, ContainerInfo, NetworkMode, RuntimeError, SharedNamespace,
};

/// How many addresses a pause container is tried with when Docker says each is in use.
const ADDRESS_TRIES: u32 = 8;

/// What starting an app or init container needs from the pass.
pub(super) struct StartContext<'a> {
    pub sandbox: &'a ContainerInfo,
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The pod's hosts file, mounted at `/etc/hosts` unless the container mounts
    /// something there itself.
    pub hosts: Option<&'a Path>,
    /// The pod's resolv.conf, mounted at `/etc/resolv.conf` the same way.
    pub resolv: Option<&'a Path>,
}

impl PodWorker {
    pub(super) async fn start_sandbox(
        &mut self,
        pod: &Pod,
        attempt: u32,
        pass: &mut Pass,
        now: Timestamp,
    ) -> Option<ContainerInfo> {
        const KEY: &str = "sandbox";
        if let Some(failed) = self.sandbox_failed_at
            && let Some(remaining) = self.backoff.remaining(KEY, failed, now)
        {
            pass.wake_in(remaining);
            return None;
        }
        let key = ContainerKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: self.uid.clone(),
            container: labels::SANDBOX_NAME.into(),
            role: Role::Sandbox,
            attempt,
        };
        let host_network = spec(pod).host_network == Some(true);
        let network = if host_network {
            NetworkMode::Host
        } else {
            NetworkMode::Network(self.env.network.clone())
        };
        let mut config =
            ContainerConfig::new(key.docker_name(), self.env.pause_image.clone(), network);
        config.labels = key.labels(&self.env.node_name);
        config.labels.insert(
            labels::POD_GRACE_PERIOD.into(),
            grace_period(pod).as_secs().to_string(),
        );
        if !host_network {
            // On the host's network a pod has the host's name, and its ports are the
            // host's already.
            config.hostname = Some(spec::hostname(pod));
            config.ports = spec::host_ports(pod);
        }
        config.ipc = SharedNamespace::Shareable;
        let runtime = self.env.runtime.clone();
        let image = self.env.pause_image.clone();
        // The kubelet's own address for the pod (see `ipam`), unless on the host's network.
        let ipam = self.env.ipam.clone().filter(|_| !host_network);
        let result: std::result::Result<ContainerInfo, RuntimeError> = async {
            if runtime.image_id(&image).await?.is_none() {
                runtime.pull_image(&image).await.map_err(|e| {
                    RuntimeError::Pull(format!(
                        "the pause image {image} is not present and cannot be pulled ({e}); \
                         deploy/images.sh builds it"
                    ))
                })?;
            }
            let mut tries = 0;
            let id = loop {
                tries += 1;
                // Held until Docker has the address attached, or the start failed.
                let lease = match &ipam {
                    Some(ipam) => Some(ipam.allocate(runtime.as_ref()).await?),
                    None => None,
                };
                config.ip = lease.as_ref().map(|l| l.ip);
                let id = runtime.create_container(&config).await?;
                match runtime.start_container(&id).await {
                    Ok(()) => break id,
                    Err(e) => {
                        let _ = runtime.remove_container(&id).await;
                        match (e, lease) {
                            // Taken by something else since the allocator looked: the
                            // next address.
                            (RuntimeError::AddressInUse(what), Some(lease))
                                if tries < ADDRESS_TRIES =>
                            {
                                tracing::info!(pod = %pod_label(pod), ip = %lease.ip, %what,
                                    "the pod address is in use; trying the next one");
                            }
                            (e, _) => return Err(e),
                        }
                    }
                }
            };
            runtime
                .inspect_container(&id)
                .await?
                .ok_or(RuntimeError::NotFound(id))
        }
        .await;
        match result {
            Ok(info) => {
                self.sandbox_failed_at = None;
                self.backoff.forget(KEY);
                Some(info)
            }
            Err(e) => {
                tracing::warn!(pod = %pod_label(pod), error = %e, "creating the pod sandbox");
                self.event(
                    pod_reference(pod, None),
                    WARNING,
                    "FailedCreatePodSandBox",
                    &format!("Failed to create pod sandbox: {e}"),
                );
                self.backoff.next(KEY, now, now);
                self.sandbox_failed_at = Some(now);
                pass.wake_in(self.backoff.current(KEY));
                None
            }
        }
    }

    /// Writes (or rewrites in place) the pod's resolv.conf; the warnings of forming it
    /// are recorded the first time only, as Kubernetes records them at sandbox creation.
    pub(super) fn write_resolv_conf(&mut self, pod: &Pod) -> std::io::Result<PathBuf> {
        let existed = spec::pod_dir(&self.env.root_dir, &self.uid)
            .join(crate::resolv::RESOLV_FILE)
            .exists();
        let (path, warnings) = self.env.dns.write(&self.env.root_dir, pod)?;
        if !existed {
            for (reason, message) in warnings {
                self.event(pod_reference(pod, None), WARNING, reason, &message);
            }
        }
        Ok(path)
    }

    /// Makes the container's image present as its pull policy says.
    async fn ensure_image(
        &mut self,
        c: &Container,
        reference: &ObjectReference,
        pass: &mut Pass,
        now: Timestamp,
    ) -> std::result::Result<(), (&'static str, String)> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| minik8s_api::defaults::default_image_pull_policy(&image).into());
        let present = match self.env.runtime.image_id(&image).await {
            Ok(id) => id.is_some(),
            Err(e) => return Err(("ErrImagePull", e.to_string())),
        };
        let pull = match policy.as_str() {
            "Always" => true,
            "Never" if !present => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.event(reference.clone(), WARNING, "ErrImageNeverPull", &message);
                return Err(("ErrImageNeverPull", message));
            }
            _ => !present,
        };
        if !pull {
            self.event(
                reference.clone(),
                NORMAL,
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(());
        }
        let key = format!("pull/{image}");
        if let Some(failed) = self.pull_failures.get(&image)
            && let Some(remaining) = self.backoff.remaining(&key, *failed, now)
        {
            let message = format!("Back-off pulling image \"{image}\"");
            self.event(reference.clone(), NORMAL, "BackOff", &message);
            pass.wake_in(remaining);
            return Err(("ImagePullBackOff", message));
        }
        self.event(
            reference.clone(),
            NORMAL,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            self.env.image_pull_timeout,
            self.env.runtime.pull_image(&image),
        )
        .await
        .unwrap_or_else(|_| {
            Err(RuntimeError::Timeout {
                op: format!("pulling image {image}"),
                after: self.env.image_pull_timeout,
            })
        });
        match result {
            Ok(()) => {
                self.pull_failures.remove(&image);
                self.event(
                    reference.clone(),
                    NORMAL,
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image}\" in {}",
                        go_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
                    ),
                );
                Ok(())
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.event(reference.clone(), WARNING, "Failed", &message);
                self.event(reference.clone(), WARNING, "Failed", "Error: ErrImagePull");
                let at = Timestamp::now();
                self.backoff.next(&key, at, at);
                self.pull_failures.insert(image, at);
                pass.wake_in(self.backoff.current(&key));
                Err(("ErrImagePull", message))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn container_config(
        &self,
        pod: &Pod,
        c: &Container,
        role: Role,
        attempt: u32,
        ctx: &StartContext<'_>,
        services: Vec<(String, String)>,
        sources: EnvSources,
    ) -> std::result::Result<ContainerConfig, String> {
        let key = ContainerKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: self.uid.clone(),
            container: c.name.clone(),
            role,
            attempt,
        };
        let image = c.image.clone().unwrap_or_default();
        let downward = Downward {
            node_name: self.env.node_name.clone(),
            pod_ip: pod_ip(&self.env, pod, ctx.sandbox),
            host_ip: self.env.host_ip,
            services,
            sources,
        };
        let env = spec::environment(pod, c, &downward)?;
        let (entrypoint, cmd) = spec::command_and_args(c, &env);
        let sandbox = ctx.sandbox.id.clone();
        let mut config = ContainerConfig::new(
            key.docker_name(),
            image.clone(),
            NetworkMode::Container(sandbox.clone()),
        );
        config.labels = key.labels(&self.env.node_name);
        config.labels.insert(labels::CONTAINER_IMAGE.into(), image);
        config.labels.insert(
            labels::POD_GRACE_PERIOD.into(),
            grace_period(pod).as_secs().to_string(),
        );
        config.entrypoint = entrypoint;
        config.cmd = cmd;
        config.env = env;
        config.working_dir = c.working_dir.clone().filter(|w| !w.is_empty());
        config.ipc = SharedNamespace::Container(sandbox.clone());
        if spec(pod).share_process_namespace == Some(true) {
            config.pid = SharedNamespace::Container(sandbox);
        }
        config.mounts = spec::mounts(c, ctx.volumes)?;
        crate::volumes::force_read_only(pod, c, &mut config.mounts);
        if let Some(hosts) = ctx.hosts
            && !config
                .mounts
                .iter()
                .any(|m| m.target.trim_end_matches('/') == crate::hosts::MOUNT_PATH)
        {
            config.mounts.push(BindMount {
                source: hosts.to_path_buf(),
                target: crate::hosts::MOUNT_PATH.into(),
                read_only: false,
            });
        }
        if let Some(resolv) = ctx.resolv
            && !config
                .mounts
                .iter()
                .any(|m| m.target.trim_end_matches('/') == crate::resolv::MOUNT_PATH)
        {
            config.mounts.push(BindMount {
                source: resolv.to_path_buf(),
                target: crate::resolv::MOUNT_PATH.into(),
                read_only: false,
            });
        }
        config.resources = spec::resources(c)?;
        config.user = spec::user(pod, c);
        config.privileged = spec::privileged(c);
        config.tty = c.tty == Some(true);
        config.stdin = c.stdin == Some(true);
        config.stdin_once = c.stdin_once == Some(true);
        Ok(config)
    }

    /// Creates and starts a new attempt of a container.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_new(
        &mut self,
        pod: &Pod,
        c: &Container,
        role: Role,
        attempt: u32,
        ctx: &StartContext<'_>,
        pass: &mut Pass,
        now: Timestamp,
    ) {
        let reference = pod_reference(pod, Some(field_path(role, &c.name)));
        if let Err((reason, message)) = self.ensure_image(c, &reference, pass, now).await {
            pass.wait(&c.name, reason, message);
            return;
        }
        // The services as they are now: a container created later sees later ones.
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let links = spec(pod).enable_service_links != Some(false);
        // And the ConfigMaps and Secrets as they are now.
        let sources = async {
            let services = self.env.services.env(namespace, links).await?;
            let sources = self.env.objects.env_sources(namespace, c).await?;
            Ok::<_, String>((services, sources))
        }
        .await;
        let config = match sources.and_then(|(services, sources)| {
            let skipped = sources.env_from(c).map(|e| e.skipped).unwrap_or_default();
            let config = self.container_config(pod, c, role, attempt, ctx, services, sources)?;
            Ok((config, skipped))
        }) {
            Ok((config, skipped)) => {
                for message in skipped {
                    self.event(
                        pod_reference(pod, None),
                        WARNING,
                        "InvalidEnvironmentVariableNames",
                        &message,
                    );
                }
                config
            }
            Err(message) => {
                self.event(reference, WARNING, "Failed", &format!("Error: {message}"));
                pass.wait(&c.name, "CreateContainerConfigError", message);
                pass.wake_in(self.env.backoff_base);
                return;
            }
        };
        let id = match self.env.runtime.create_container(&config).await {
            Ok(id) => id,
            Err(RuntimeError::Conflict(_)) => {
                // Another pass created it: look again.
                pass.wake_in(Duration::from_millis(200));
                return;
            }
            Err(e) => {
                self.event(reference, WARNING, "Failed", &format!("Error: {e}"));
                pass.wait(&c.name, "CreateContainerError", e.to_string());
                pass.wake_in(self.env.backoff_base);
                return;
            }
        };
        self.event(
            reference.clone(),
            NORMAL,
            "Created",
            &format!("Created container {}", c.name),
        );
        self.start_id(reference, &c.name, &id, pass).await;
    }

    /// Starts a container that was created but never started (a kubelet stopped between
    /// the two steps).
    pub(super) async fn start_existing(
        &mut self,
        pod: &Pod,
        c: &Container,
        role: Role,
        info: &ContainerInfo,
        pass: &mut Pass,
    ) {
        let reference = pod_reference(pod, Some(field_path(role, &c.name)));
        self.start_id(reference, &c.name, &info.id, pass).await;
    }

    async fn start_id(
        &mut self,
        reference: ObjectReference,
        name: &str,
        id: &str,
        pass: &mut Pass,
    ) {
        match self.env.runtime.start_container(id).await {
            Ok(()) => self.event(
                reference,
                NORMAL,
                "Started",
                &format!("Started container {name}"),
            ),
            Err(e) => {
                self.event(reference, WARNING, "Failed", &format!("Error: {e}"));
                pass.wait(name, "RunContainerError", e.to_string());
                pass.wake_in(Duration::from_millis(200));
            }
        }
    }
}
