//! `kubectl describe` against an in-process API server with pods in every state: the
//! exact layout kubectl prints. Times in the seeded objects are fixed, or old enough that
//! their ages cannot change during a test; the rest is masked.

mod kubectl_support;

use kubectl_support::{Cluster, seed, seed_services};

async fn describe(c: &Cluster, args: &[&str]) -> String {
    let mut argv = vec!["describe"];
    argv.extend_from_slice(args);
    let out = c.kubectl(&argv).await;
    assert_eq!(out.err, "");
    out.ok().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_pod_with_events() {
    let c = Cluster::start().await;
    seed(&c).await;
    assert_eq!(describe(&c, &["pod", "running"]).await, RUNNING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_in_other_states() {
    let c = Cluster::start().await;
    seed(&c).await;
    assert_eq!(describe(&c, &["pod", "failed"]).await, FAILED);
    assert_eq!(describe(&c, &["pod", "initializing"]).await, INITIALIZING);
    assert_eq!(describe(&c, &["pod", "terminating"]).await, TERMINATING);
    assert_eq!(describe(&c, &["po", "pending"]).await, PENDING);
    let crash = describe(&c, &["pod/crashloop"]).await;
    for want in [
        "    State:          Waiting\n      Reason:       CrashLoopBackOff\n    Last State:     Terminated\n      Reason:       Error\n      Exit Code:    2\n      Started:      ",
        "    Ready:          False\n    Restart Count:  5\n",
    ] {
        assert!(crash.contains(want), "missing {want:?} in:\n{crash}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_its_pods_and_allocations() {
    let c = Cluster::start().await;
    seed(&c).await;
    let text = describe(&c, &["node", "node-1"]).await;
    let masked: String = text
        .lines()
        .map(|l| {
            if l.starts_with("CreationTimestamp:") {
                "CreationTimestamp:  ?".to_string()
            } else if l.starts_with("  default ") {
                let (row, _age) = l.rsplit_once(' ').unwrap();
                format!("{row} ?")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_eq!(masked, NODE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_objects_prefixes_and_missing_ones() {
    let c = Cluster::start().await;
    seed(&c).await;
    // All pods matching a selector, separated by two blank lines.
    let all = describe(&c, &["pods", "-l", "app in (failed,pending)"]).await;
    assert_eq!(all, format!("{FAILED}\n\n{PENDING}"));
    // A name that matches no pod exactly describes the pods it begins.
    let by_prefix = describe(&c, &["pod", "fail"]).await;
    assert_eq!(by_prefix, format!("{FAILED}\n"));
    let out = c.kubectl(&["describe", "pod", "nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.err,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let out = c.kubectl(&["describe", "pods", "-n", "kube-system"]).await;
    assert_eq!((out.code, out.out.as_str()), (0, ""));
    assert_eq!(out.err, "No resources found in kube-system namespace.\n");
    // Events can be left out.
    let quiet = describe(&c, &["pod", "running", "--show-events=false"]).await;
    assert!(quiet.ends_with("Tolerations:     <none>\n"), "{quiet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces() {
    let c = Cluster::start().await;
    let text = describe(&c, &["ns", "default"]).await;
    assert_eq!(
        text,
        "Name:         default\nLabels:       kubernetes.io/metadata.name=default\nAnnotations:  <none>\nStatus:       Active\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_with_their_endpoints() {
    let c = Cluster::start_with_controllers().await;
    seed_services(&c).await;
    assert_eq!(describe(&c, &["svc", "web"]).await, SERVICE_WEB);
    assert_eq!(describe(&c, &["svc", "np"]).await, SERVICE_NP);
    let headless = describe(&c, &["svc", "hl"]).await;
    for want in [
        "Type:                     ClusterIP\n",
        "IP:                       None\nIPs:                      None\n",
        "Port:                     <unset>  80/TCP\nTargetPort:               8080/TCP\nEndpoints:                10.244.0.21:8080,10.244.0.22:8080,10.244.0.23:8080 + 1 more...\n",
    ] {
        assert!(headless.contains(want), "missing {want:?} in:\n{headless}");
    }
    let lonely = describe(&c, &["svc", "lonely"]).await;
    assert!(
        lonely.contains(
            "Port:                     <unset>  53/UDP\nTargetPort:               53/UDP\nEndpoints:                \n"
        ),
        "{lonely}"
    );
    let db = describe(&c, &["svc", "db"]).await;
    assert!(db.contains("Selector:                 <none>\n"), "{db}");
    assert!(db.contains("Endpoints:                <none>\n"), "{db}");
}

const SERVICE_WEB: &str = r#"Name:                     web
Namespace:                default
Labels:                   app=web
                          tier=front
Annotations:              team: shop
Selector:                 app=web
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.50
IPs:                      10.96.0.50
Port:                     http  80/TCP
TargetPort:               http/TCP
Endpoints:                10.244.0.21:8080,10.244.0.22:8080,10.244.0.23:8080 + 1 more...
Port:                     metrics  9090/TCP
TargetPort:               9090/TCP
Endpoints:                10.244.0.21:9090,10.244.0.22:9090,10.244.0.23:9090 + 1 more...
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"#;

const SERVICE_NP: &str = r#"Name:                     np
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.51
IPs:                      10.96.0.51
Port:                     <unset>  8080/TCP
TargetPort:               8080/TCP
NodePort:                 <unset>  30080/TCP
Endpoints:                10.244.0.21:8080,10.244.0.22:8080,10.244.0.23:8080 + 1 more...
Session Affinity:         ClientIP
External Traffic Policy:  Local
Internal Traffic Policy:  Cluster
Events:                   <none>
"#;

const RUNNING: &str = r#"Name:         running
Namespace:    default
Node:         node-1/10.0.0.1
Start Time:   Wed, 01 May 2024 10:00:00 +0000
Labels:       app=running
              tier=demo
Annotations:  <none>
Status:       Running
IP:           10.244.0.5
IPs:
  IP:  10.244.0.5
Containers:
  app:
    Container ID:  docker://c0ffee
    Image:         busybox:1.36
    Image ID:      docker-pullable://busybox@sha256:0123abcd
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      sleep
      3600
    State:          Running
      Started:      Wed, 01 May 2024 10:00:10 +0000
    Ready:          True
    Restart Count:  0
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:     500m
      memory:  64Mi
    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:  prod
    Mounts:
      /data from data (rw)
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Guaranteed
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type     Reason     Age                From     Message
  ----     ------     ----               ----     -------
  Normal   Pulled     3h                 kubelet  Container image "busybox:1.36" already present on machine
  Warning  Unhealthy  120m (x4 over 5d)  kubelet  Liveness probe failed: HTTP probe failed with statuscode: 500
"#;

const FAILED: &str = r#"Name:         failed
Namespace:    default
Node:         node-1/10.0.0.1
Start Time:   Wed, 01 May 2024 10:00:00 +0000
Labels:       app=failed
              tier=demo
Annotations:  <none>
Status:       Failed
IP:           10.244.0.7
IPs:
  IP:  10.244.0.7
Containers:
  app:
    Container ID:  docker://c0ffee
    Image:         busybox:1.36
    Image ID:      docker-pullable://busybox@sha256:0123abcd
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      sleep
      3600
    State:          Terminated
      Reason:       Error
      Message:      boom
      Exit Code:    1
      Started:      Wed, 01 May 2024 10:00:10 +0000
      Finished:     Wed, 01 May 2024 10:00:40 +0000
    Ready:          False
    Restart Count:  0
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:     500m
      memory:  64Mi
    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:  prod
    Mounts:
      /data from data (rw)
Conditions:
  Type              Status
  Initialized       True 
  Ready             False 
  ContainersReady   False 
  PodScheduled      True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Guaranteed
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"#;

const INITIALIZING: &str = r#"Name:         initializing
Namespace:    default
Node:         node-1/10.0.0.1
Start Time:   Wed, 01 May 2024 10:00:00 +0000
Labels:       app=initializing
              tier=demo
Annotations:  <none>
Status:       Pending
IP:           10.244.0.9
IPs:
  IP:  10.244.0.9
Init Containers:
  setup:
    Container ID:  docker://c0ffee
    Image:         busybox:1.36
    Image ID:      docker-pullable://busybox@sha256:0123abcd
    Port:          <none>
    Host Port:     <none>
    Command:
      sh
      -c
      echo hi
    State:          Running
      Started:      Wed, 01 May 2024 10:00:10 +0000
    Ready:          False
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Containers:
  app:
    Container ID:  
    Image:         busybox:1.36
    Image ID:      
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      sleep
      3600
    State:          Waiting
      Reason:       PodInitializing
    Ready:          False
    Restart Count:  0
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:     500m
      memory:  64Mi
    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:  prod
    Mounts:
      /data from data (rw)
Conditions:
  Type              Status
  Initialized       False 
  Ready             False 
  ContainersReady   False 
  PodScheduled      True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"#;

const TERMINATING: &str = r#"Name:                      terminating
Namespace:                 default
Node:                      node-1/10.0.0.1
Start Time:                Wed, 01 May 2024 10:00:00 +0000
Labels:                    app=terminating
                           tier=demo
Annotations:               <none>
Status:                    Terminating (lasts <invalid>)
Termination Grace Period:  30s
IP:                        10.244.0.10
IPs:
  IP:  10.244.0.10
Containers:
  app:
    Container ID:  docker://c0ffee
    Image:         busybox:1.36
    Image ID:      docker-pullable://busybox@sha256:0123abcd
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      sleep
      3600
    State:          Running
      Started:      Wed, 01 May 2024 10:00:10 +0000
    Ready:          True
    Restart Count:  0
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:     500m
      memory:  64Mi
    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:  prod
    Mounts:
      /data from data (rw)
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Guaranteed
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"#;

const PENDING: &str = r#"Name:         pending
Namespace:    default
Node:         <none>
Labels:       app=pending
              tier=demo
Annotations:  <none>
Status:       Pending
IP:           
IPs:          <none>
Containers:
  app:
    Image:      busybox:1.36
    Port:       8080/TCP
    Host Port:  0/TCP
    Command:
      sleep
      3600
    Limits:
      cpu:     500m
      memory:  64Mi
    Requests:
      cpu:     500m
      memory:  64Mi
    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:  prod
    Mounts:
      /data from data (rw)
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Guaranteed
Node-Selectors:  disk=none
Tolerations:     <none>
Events:          <none>
"#;

const NODE: &str = r#"Name:               node-1
Roles:              control-plane
Labels:             kubernetes.io/hostname=node-1
                    node-role.kubernetes.io/control-plane=
Annotations:        <none>
CreationTimestamp:  ?
Taints:             <none>
Unschedulable:      false
Lease:              Failed to get lease: the server could not find the requested resource
Conditions:
  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason         Message
  ----    ------  -----------------                 ------------------                ------         -------
  Ready   True    Wed, 01 May 2024 10:00:40 +0000   Wed, 01 May 2024 10:00:00 +0000   KubeletReady   kubelet is posting ready status
Addresses:
  InternalIP:  10.0.0.1
  Hostname:    node-1
Capacity:
  cpu:     4
  memory:  8Gi
  pods:    110
Allocatable:
  cpu:     4
  memory:  8Gi
  pods:    110
System Info:
  Machine ID:                 m-1
  System UUID:                s-1
  Boot ID:                    b-1
  Kernel Version:             6.1.0
  OS Image:                   Debian GNU/Linux 12
  Operating System:           linux
  Architecture:               amd64
  Container Runtime Version:  docker://24.0.7
  Kubelet Version:            v1.33.0-minik8s
  Kube-Proxy Version:         
Non-terminated Pods:          (5 in total)
  Namespace                   Name            CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------                   ----            ------------  ----------  ---------------  -------------  ---
  default                     crashloop       500m (12%)    500m (12%)  64Mi (0%)        64Mi (0%)      ?
  default                     creating        500m (12%)    500m (12%)  64Mi (0%)        64Mi (0%)      ?
  default                     initializing    500m (12%)    500m (12%)  64Mi (0%)        64Mi (0%)      ?
  default                     running         500m (12%)    500m (12%)  64Mi (0%)        64Mi (0%)      ?
  default                     terminating     500m (12%)    500m (12%)  64Mi (0%)        64Mi (0%)      ?
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource           Requests     Limits
  --------           --------     ------
  cpu                2500m (62%)  2500m (62%)
  memory             320Mi (3%)   320Mi (3%)
  ephemeral-storage  0 (0%)       0 (0%)
Events:              <none>
"#;
