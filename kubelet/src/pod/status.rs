//! A pod's status from what Docker reports and what the worker decided in this pass:
//! container states, phase and conditions the way Kubernetes' kubelet computes them
//! (`getPhase`, `GeneratePodReadyCondition`, ...). Pure functions.

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::spec::spec;
use crate::runtime::{ContainerInfo, ContainerState};

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// Kubernetes times have whole seconds: a status built with finer times would never
/// equal the one read back, and would be sent again and again.
pub fn time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

pub fn is_terminal(phase: Option<&str>) -> bool {
    matches!(phase, Some(SUCCEEDED) | Some(FAILED))
}

/// What a container's runtime state amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effective {
    /// Created and not started yet.
    Created,
    Running,
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
    },
}

impl Effective {
    pub fn of(info: &ContainerInfo) -> Effective {
        match info.state {
            ContainerState::Running => Effective::Running,
            ContainerState::Created if info.error.is_none() => Effective::Created,
            // Docker leaves a container that could not start in `created`, with an error.
            ContainerState::Created => Effective::Terminated {
                exit_code: match i32::try_from(info.exit_code).unwrap_or(128) {
                    0 => 128,
                    code => code,
                },
                reason: "StartError".into(),
                message: info.error.clone(),
            },
            ContainerState::Exited | ContainerState::Other => {
                let exit_code = i32::try_from(info.exit_code).unwrap_or(-1);
                let reason = if info.oom_killed {
                    "OOMKilled"
                } else if exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                Effective::Terminated {
                    exit_code,
                    reason: reason.into(),
                    message: info.error.clone(),
                }
            }
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Effective::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

/// When a container stopped, for back-off: its finish time, else its creation (a
/// container that never started).
pub fn stopped_at(info: &ContainerInfo) -> Option<Timestamp> {
    info.finished_at.or(info.started_at).or(info.created_at)
}

pub fn terminated(info: &ContainerInfo) -> Option<ContainerStateTerminated> {
    match Effective::of(info) {
        Effective::Terminated {
            exit_code,
            reason,
            message,
        } => Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason),
            message,
            started_at: info.started_at.map(time),
            finished_at: info.finished_at.or(info.created_at).map(time),
            container_id: Some(container_id(&info.id)),
            signal: None,
        }),
        _ => None,
    }
}

pub fn container_id(id: &str) -> String {
    format!("docker://{id}")
}

/// One container as this pass sees it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The latest attempt.
    pub current: Option<ContainerInfo>,
    /// The attempt before it.
    pub previous: Option<ContainerInfo>,
    /// Why it is not running, when this pass knows better than Docker (back-off, pull
    /// errors, configuration errors).
    pub waiting: Option<(String, String)>,
    pub ready: bool,
    pub started: bool,
}

fn waiting(reason: &str, message: Option<String>) -> K8sState {
    K8sState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: message.filter(|m| !m.is_empty()),
        }),
        ..K8sState::default()
    }
}

/// The status of one container.
pub fn container_status(
    name: &str,
    image: &str,
    observed: &Observed,
    default_waiting: &str,
) -> ContainerStatus {
    let current = observed.current.as_ref();
    let previous_terminated = || {
        observed
            .previous
            .as_ref()
            .and_then(terminated)
            .map(|t| K8sState {
                terminated: Some(t),
                ..K8sState::default()
            })
    };
    let (state, last) = match (&observed.waiting, current.map(|c| (c, Effective::of(c)))) {
        (Some((reason, message)), Some((c, Effective::Terminated { .. }))) => (
            waiting(reason, Some(message.clone())),
            terminated(c).map(|t| K8sState {
                terminated: Some(t),
                ..K8sState::default()
            }),
        ),
        (Some((reason, message)), _) => (
            waiting(reason, Some(message.clone())),
            previous_terminated(),
        ),
        (None, Some((c, Effective::Running))) => (
            K8sState {
                running: Some(ContainerStateRunning {
                    started_at: c.started_at.map(time),
                }),
                ..K8sState::default()
            },
            previous_terminated(),
        ),
        (None, Some((c, Effective::Terminated { .. }))) => (
            K8sState {
                terminated: terminated(c),
                ..K8sState::default()
            },
            previous_terminated(),
        ),
        (None, Some((_, Effective::Created))) => {
            (waiting("ContainerCreating", None), previous_terminated())
        }
        (None, None) => (waiting(default_waiting, None), None),
    };
    let running = state.running.is_some();
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: current
            .map(|c| c.image_id.clone())
            .filter(|id| !id.is_empty())
            .map(|id| format!("docker://{id}"))
            .unwrap_or_default(),
        container_id: current.map(|c| container_id(&c.id)),
        restart_count: current
            .and_then(|c| crate::labels::ContainerKey::from_labels(&c.labels))
            .map_or(0, |k| i32::try_from(k.attempt).unwrap_or(i32::MAX)),
        ready: running && observed.ready,
        started: Some(running && observed.started),
        state: Some(state),
        last_state: last,
        ..ContainerStatus::default()
    }
}

/// Kubernetes' `getPhase`.
pub fn phase(
    restart_policy: &str,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for s in init {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for s in app {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
            {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return FAILED;
    }
    if (pending_init > 0 && failed_init == 0) || waiting > 0 {
        return PENDING;
    }
    if failed_init > 0 {
        // Init containers are being restarted.
        return PENDING;
    }
    if running > 0 && unknown == 0 {
        return RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                SUCCEEDED
            } else {
                FAILED
            };
        }
        if restart_policy == "Always" {
            return RUNNING;
        }
        if stopped == succeeded {
            return SUCCEEDED;
        }
        if restart_policy == "Never" {
            return FAILED;
        }
        return RUNNING;
    }
    PENDING
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    old: Option<&PodStatus>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.last_transition_time.is_some() => {
            p.last_transition_time.clone()
        }
        _ => Some(time(now)),
    };
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time,
        last_probe_time: None,
        observed_generation: None,
    }
}

/// Everything one pass knows about a pod.
pub struct Snapshot<'a> {
    pub pod: &'a Pod,
    /// The status last read or written.
    pub old: Option<&'a PodStatus>,
    pub init: &'a [Observed],
    pub app: &'a [Observed],
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    pub now: Timestamp,
}

/// The pod's status.
pub fn pod_status(s: &Snapshot<'_>) -> PodStatus {
    let spec = spec(s.pod);
    let old_phase = s.old.and_then(|o| o.phase.as_deref());
    let terminal = is_terminal(old_phase);
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .zip(s.init)
        .map(|(c, o)| {
            container_status(
                &c.name,
                c.image.as_deref().unwrap_or_default(),
                o,
                "PodInitializing",
            )
        })
        .collect();
    let initialized = init.iter().all(|st| {
        st.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    });
    let app: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .zip(s.app)
        .map(|(c, o)| {
            let default = if initialized {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            container_status(&c.name, c.image.as_deref().unwrap_or_default(), o, default)
        })
        .collect();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let phase = match old_phase {
        // A terminal phase is final.
        Some(p) if terminal => {
            if p == SUCCEEDED {
                SUCCEEDED
            } else {
                FAILED
            }
        }
        _ => phase(restart_policy, &init, &app, false),
    };

    let incomplete: Vec<&str> = init
        .iter()
        .filter(|st| {
            st.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|st| st.name.as_str())
        .collect();
    let unready: Vec<&str> = app
        .iter()
        .filter(|st| !st.ready)
        .map(|st| st.name.as_str())
        .collect();
    let completed = phase == SUCCEEDED;
    let (init_ok, init_reason, init_message) = if completed {
        (true, Some("PodCompleted".to_string()), None)
    } else if incomplete.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };
    let (ready_ok, ready_reason, ready_message) = if completed {
        (false, Some("PodCompleted".to_string()), None)
    } else if !incomplete.is_empty() {
        (
            false,
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let conditions = vec![
        condition(
            "Initialized",
            init_ok,
            init_reason,
            init_message,
            s.old,
            s.now,
        ),
        condition(
            "Ready",
            ready_ok,
            ready_reason.clone(),
            ready_message.clone(),
            s.old,
            s.now,
        ),
        condition(
            "ContainersReady",
            ready_ok,
            ready_reason,
            ready_message,
            s.old,
            s.now,
        ),
        condition("PodScheduled", true, None, None, s.old, s.now),
    ];
    let old = s.old.cloned().unwrap_or_default();
    let pod_ip = s
        .pod_ip
        .map(|ip| ip.to_string())
        .or(old.pod_ip.clone().filter(|ip| !ip.is_empty()));
    let host_ip = s
        .host_ip
        .map(|ip| ip.to_string())
        .or(old.host_ip.clone().filter(|ip| !ip.is_empty()));
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.clone().or_else(|| Some(time(s.now))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(app),
        qos_class: old
            .qos_class
            .clone()
            .or_else(|| Some(minik8s_api::defaults::pod_qos_class(s.pod).to_string())),
        message: old.message.clone(),
        reason: old.reason.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{ContainerKey, Role};
    use std::collections::BTreeMap;

    fn info(name: &str, attempt: u32, state: ContainerState, exit_code: i64) -> ContainerInfo {
        let key = ContainerKey {
            namespace: "default".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            container: name.into(),
            role: Role::App,
            attempt,
        };
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        ContainerInfo {
            id: format!("{name}-{attempt}"),
            name: key.docker_name(),
            labels: key.labels("n"),
            image: "img".into(),
            image_id: "sha256:1".into(),
            state,
            exit_code,
            oom_killed: false,
            error: None,
            created_at: Some(t0),
            started_at: Some(t0),
            finished_at: (state == ContainerState::Exited).then_some(t0),
            ip: None,
            resources: Default::default(),
        }
    }

    fn running(attempt: u32) -> Observed {
        Observed {
            current: Some(info("c", attempt, ContainerState::Running, 0)),
            ready: true,
            started: true,
            ..Observed::default()
        }
    }

    fn exited(attempt: u32, code: i64) -> Observed {
        Observed {
            current: Some(info("c", attempt, ContainerState::Exited, code)),
            ..Observed::default()
        }
    }

    fn backing_off(attempt: u32, code: i64) -> Observed {
        Observed {
            waiting: Some(("CrashLoopBackOff".into(), "back-off".into())),
            ..exited(attempt, code)
        }
    }

    fn statuses(observed: &[Observed]) -> Vec<ContainerStatus> {
        observed
            .iter()
            .map(|o| container_status("c", "img", o, "ContainerCreating"))
            .collect()
    }

    #[test]
    fn phase_table() {
        let none: &[ContainerStatus] = &[];
        let cases: Vec<(&str, Vec<Observed>, &str)> = vec![
            ("Always", vec![Observed::default()], PENDING),
            ("Always", vec![running(0)], RUNNING),
            ("Always", vec![exited(0, 0)], RUNNING),
            ("Always", vec![backing_off(3, 1)], RUNNING),
            ("OnFailure", vec![exited(1, 0)], SUCCEEDED),
            ("OnFailure", vec![backing_off(1, 2)], RUNNING),
            ("OnFailure", vec![exited(0, 0), running(0)], RUNNING),
            ("Never", vec![exited(0, 1)], FAILED),
            ("Never", vec![exited(0, 0)], SUCCEEDED),
            ("Never", vec![exited(0, 1), running(0)], RUNNING),
            ("Never", vec![exited(0, 0), Observed::default()], PENDING),
        ];
        for (policy, observed, want) in cases {
            assert_eq!(
                phase(policy, none, &statuses(&observed), false),
                want,
                "{policy} {observed:?}"
            );
        }
        // A failed init container fails a Never pod, and keeps others pending.
        let init = statuses(&[exited(0, 1)]);
        assert_eq!(
            phase("Never", &init, &statuses(&[Observed::default()]), false),
            FAILED
        );
        assert_eq!(
            phase("OnFailure", &init, &statuses(&[Observed::default()]), false),
            PENDING
        );
        let init = statuses(&[running(0)]);
        assert_eq!(
            phase("Always", &init, &statuses(&[Observed::default()]), false),
            PENDING
        );
    }

    #[test]
    fn crash_loop_status_has_last_state_and_restart_count() {
        let s = container_status("c", "img", &backing_off(4, 2), "ContainerCreating");
        assert_eq!(s.restart_count, 4);
        let state = s.state.unwrap();
        assert_eq!(
            state.waiting.unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = s.last_state.unwrap().terminated.unwrap();
        assert_eq!(last.exit_code, 2);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert!(!s.ready);
        assert_eq!(s.container_id.as_deref(), Some("docker://c-4"));
        assert_eq!(s.image_id, "docker://sha256:1");
    }

    #[test]
    fn running_after_restart_shows_previous_termination() {
        let mut o = running(1);
        let mut oom = info("c", 0, ContainerState::Exited, 137);
        oom.oom_killed = true;
        o.previous = Some(oom);
        let s = container_status("c", "img", &o, "ContainerCreating");
        assert!(s.state.unwrap().running.is_some());
        assert_eq!(
            s.last_state.unwrap().terminated.unwrap().reason.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(s.restart_count, 1);
        assert!(s.ready);
        assert_eq!(s.started, Some(true));
    }

    #[test]
    fn start_errors_are_terminations() {
        let mut c = info("c", 0, ContainerState::Created, 127);
        c.error = Some("exec: \"nope\": executable file not found".into());
        match Effective::of(&c) {
            Effective::Terminated {
                exit_code, reason, ..
            } => {
                assert_eq!(exit_code, 127);
                assert_eq!(reason, "StartError");
            }
            other => panic!("{other:?}"),
        }
    }

    fn pod(policy: &str, init: usize) -> Pod {
        let init: Vec<_> = (0..init)
            .map(|i| serde_json::json!({"name": format!("init{i}"), "image": "img"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "initContainers": init,
                     "containers": [{"name": "c", "image": "img"}]}
        }))
        .unwrap()
    }

    fn conditions(status: &PodStatus) -> BTreeMap<String, (String, Option<String>)> {
        status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), (c.status.clone(), c.reason.clone())))
            .collect()
    }

    #[test]
    fn conditions_follow_readiness_and_initialization() {
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let p = pod("Always", 1);
        let init = [Observed {
            current: Some(info("init0", 0, ContainerState::Running, 0)),
            ..Observed::default()
        }];
        let app = [Observed::default()];
        let s = pod_status(&Snapshot {
            pod: &p,
            old: None,
            init: &init,
            app: &app,
            pod_ip: Some("10.0.0.2".parse().unwrap()),
            host_ip: Some("192.168.1.2".parse().unwrap()),
            now,
        });
        assert_eq!(s.phase.as_deref(), Some(PENDING));
        let c = conditions(&s);
        assert_eq!(
            c["Initialized"],
            ("False".into(), Some("ContainersNotInitialized".into()))
        );
        assert_eq!(c["Ready"].0, "False");
        assert_eq!(c["PodScheduled"].0, "True");
        let app_status = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app_status
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.1.2"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));

        // Init done, app running and ready: everything True; transition times are kept
        // for conditions that did not change.
        let init = [exited(0, 0)];
        let app = [running(0)];
        let later = Timestamp::from_second(1_700_000_200).unwrap();
        let s2 = pod_status(&Snapshot {
            pod: &p,
            old: Some(&s),
            init: &init,
            app: &app,
            pod_ip: None,
            host_ip: None,
            now: later,
        });
        assert_eq!(s2.phase.as_deref(), Some(RUNNING));
        assert!(conditions(&s2).values().all(|(st, _)| st == "True"));
        let scheduled = |st: &PodStatus| {
            st.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "PodScheduled")
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(scheduled(&s2), scheduled(&s));
        assert_eq!(s2.start_time, s.start_time);
        // The pod IP is kept when the sandbox is gone.
        assert_eq!(s2.pod_ip.as_deref(), Some("10.0.0.2"));
        // Same inputs, same status: nothing to send.
        let s3 = pod_status(&Snapshot {
            pod: &p,
            old: Some(&s2),
            init: &init,
            app: &app,
            pod_ip: None,
            host_ip: None,
            now: later + jiff::SignedDuration::from_secs(30),
        });
        assert_eq!(s3, s2);
    }

    #[test]
    fn terminal_phases_stay() {
        let p = pod("OnFailure", 0);
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let app = [exited(1, 0)];
        let s = pod_status(&Snapshot {
            pod: &p,
            old: None,
            init: &[],
            app: &app,
            pod_ip: None,
            host_ip: None,
            now,
        });
        assert_eq!(s.phase.as_deref(), Some(SUCCEEDED));
        assert_eq!(
            conditions(&s)["Ready"],
            ("False".into(), Some("PodCompleted".into()))
        );
        // Even if a container showed up running again, the phase is final.
        let app = [running(2)];
        let s2 = pod_status(&Snapshot {
            pod: &p,
            old: Some(&s),
            init: &[],
            app: &app,
            pod_ip: None,
            host_ip: None,
            now,
        });
        assert_eq!(s2.phase.as_deref(), Some(SUCCEEDED));
    }
}
