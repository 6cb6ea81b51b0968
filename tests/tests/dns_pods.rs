//! Cluster DNS as pods see it, on real Docker with the real kubectl: each `dnsPolicy`'s
//! `/etc/resolv.conf` and a pod's own line in its hosts file; service, SRV and
//! StatefulSet member names resolved by busybox `nslookup` inside pods; a peer-finder-
//! style loop (SRV polled every second, the sorted peer list written on change) following
//! a scale-up, a scale-down and a member made again with a new address; `dig` from the
//! host at the `kube-dns` address, through the node proxy's rule to the node's server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

struct Kubectl(PathBuf);

impl Kubectl {
    fn new(node: &TestNode, dir: &Path) -> Kubectl {
        Kubectl(node.api.write_kubeconfig(dir).unwrap())
    }

    /// Runs kubectl; its stdout, or its stderr as the error.
    fn try_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut child = std::process::Command::new(real_kubectl())
            .args(args)
            .env("KUBECONFIG", &self.0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr).into_owned()
            ))
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.try_run(args, stdin)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn apply(&self, obj: &Value) {
        self.run(&["apply", "-f", "-"], Some(&obj.to_string()));
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&args, None)).unwrap()
    }

    /// A command's output, whether it exited 0 or not (busybox nslookup fails when any
    /// search domain says NXDOMAIN, the answer found or not).
    fn out(&self, pod: &str, command: &str) -> String {
        match self.exec(pod, command) {
            Ok(o) | Err(o) => o,
        }
    }

    fn exec(&self, pod: &str, command: &str) -> Result<String, String> {
        self.try_run(&["exec", pod, "--", "sh", "-c", command], None)
    }
}

/// Runs `command` in `client` until its output satisfies `check`; the output last seen
/// in the failure.
async fn wait_out(kubectl: &Kubectl, command: &str, check: impl Fn(&str) -> bool) -> String {
    let last = std::sync::Mutex::new(String::new());
    wait_for(command, T, || async {
        let out = kubectl.out("client", command);
        *last.lock().unwrap() = out.clone();
        check(&out).then_some(out)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", last.lock().unwrap()))
}

fn sleeper(name: &str, spec: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
        }]},
    });
    for (k, v) in spec.as_object().unwrap() {
        pod["spec"][k] = v.clone();
    }
    pod
}

async fn wait_running(kubectl: &Kubectl, names: &[&str]) {
    for name in names {
        wait_for(&format!("pod {name} ready"), T, || async {
            let pod = kubectl.json(&["get", "pod", name]);
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then_some(())
        })
        .await
        .unwrap();
    }
}

/// The kube-dns service's address, as the API server made it.
fn kube_dns_ip(kubectl: &Kubectl) -> String {
    let svc = kubectl.json(&["get", "svc", "-n", "kube-system", "kube-dns"]);
    svc["spec"]["clusterIP"].as_str().unwrap().to_string()
}

/// What `--resolv-conf` (the host's file) gives a `Default` pod: its nameserver, search
/// and options lines, in the CRI's order.
fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let lines = |key: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let mut out = String::new();
    if let Some(search) = lines("search").last().filter(|s| !s.is_empty()) {
        out.push_str(&format!("search {search}\n"));
    }
    for ns in lines("nameserver") {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    let options = lines("options");
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The file without the kubelet's padding line (a comment of spaces), if any.
fn unpadded(text: &str) -> String {
    text.lines()
        .filter(|l| !(l.starts_with('#') && l[1..].trim().is_empty()))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dns_policy_gets_its_resolv_conf_and_a_pod_its_own_hosts_line() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&node, dir.path());
    let dns = wait_for("the kube-dns service", T, || async {
        kubectl
            .try_run(
                &["get", "svc", "-n", "kube-system", "kube-dns", "-o", "json"],
                None,
            )
            .ok()
    })
    .await
    .unwrap();
    let svc: Value = serde_json::from_str(&dns).unwrap();
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    // The tenth address of the cluster's service range (10.251.X.0/24).
    assert!(
        ip.starts_with("10.251.") && ip.ends_with(".10"),
        "kube-dns at {ip}"
    );
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
    let ports: Vec<(String, String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["protocol"].as_str().unwrap().to_string(),
                p["port"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_string(), "UDP".to_string(), 53),
            ("dns-tcp".to_string(), "TCP".to_string(), 53)
        ]
    );
    // A user's service cannot have its address.
    let taken = kubectl
        .try_run(
            &["create", "-f", "-"],
            Some(
                &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "thief"},
                    "spec": {"clusterIP": ip, "ports": [{"port": 53}]}})
                .to_string(),
            ),
        )
        .unwrap_err();
    assert!(
        taken.contains("provided IP is already allocated"),
        "{taken}"
    );

    kubectl.apply(&sleeper("cluster-first", json!({})));
    kubectl.apply(&sleeper("default", json!({"dnsPolicy": "Default"})));
    kubectl.apply(&sleeper(
        "none",
        json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["192.0.2.1"],
            "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        }}),
    ));
    kubectl.apply(&sleeper(
        "merged",
        json!({"dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}}),
    ));
    kubectl.apply(&sleeper("host-net", json!({"hostNetwork": true})));
    kubectl.apply(&sleeper(
        "host-net-cluster",
        json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
    ));
    kubectl.apply(&sleeper(
        "member",
        json!({"hostname": "db-0", "subdomain": "db"}),
    ));
    wait_running(
        &kubectl,
        &[
            "cluster-first",
            "default",
            "none",
            "merged",
            "host-net",
            "host-net-cluster",
            "member",
        ],
    )
    .await;

    let cat = |pod: &str| unpadded(&kubectl.exec(pod, "cat /etc/resolv.conf").unwrap());
    let cluster = format!(
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {ip}\noptions ndots:5\n"
    );
    // The host here has no search line of its own; were there one, it would follow.
    let host = host_resolv_conf();
    let cluster = if let Some(search) = host.lines().find(|l| l.starts_with("search ")) {
        cluster.replacen(
            "cluster.local\n",
            &format!("cluster.local {}\n", &search[7..]),
            1,
        )
    } else {
        cluster
    };
    assert_eq!(cat("cluster-first"), cluster);
    assert_eq!(cat("member"), cluster);
    assert_eq!(cat("host-net-cluster"), cluster);
    assert_eq!(cat("default"), host);
    assert_eq!(cat("host-net"), host);
    assert_eq!(
        cat("none"),
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n"
    );
    assert_eq!(
        cat("merged"),
        cluster
            .replacen("\nnameserver", " extra.example\nnameserver", 1)
            .replace(
                "options ndots:5\n",
                "nameserver 192.0.2.1\noptions ndots:1 single-request\n"
            )
    );

    // The pod's own fully qualified line, as Kubernetes writes it, beside the group's.
    let pod = kubectl.json(&["get", "pod", "member"]);
    let pod_ip = pod["status"]["podIP"].as_str().unwrap();
    let hosts = kubectl.exec("member", "cat /etc/hosts").unwrap();
    assert!(
        hosts.contains(&format!(
            "{pod_ip}\tdb-0.db.default.svc.cluster.local\tdb-0\n"
        )),
        "{hosts}"
    );
    assert!(
        hosts.contains(&format!("{pod_ip}   db-0 db-0.db\n")),
        "{hosts}"
    );
    let plain = kubectl.exec("cluster-first", "cat /etc/hosts").unwrap();
    assert!(!plain.contains(".svc.cluster.local"), "{plain}");

    // kube-dns's endpoints are the nodes' DNS servers: this node's pod bridge gateway.
    let ep = wait_for("kube-dns endpoints", T, || async {
        let ep = kubectl.json(&["get", "ep", "-n", "kube-system", "kube-dns"]);
        ep["subsets"][0]["addresses"][0]["ip"]
            .as_str()
            .map(str::to_string)
    })
    .await
    .unwrap();
    let cidr: String = kubectl.json(&["get", "node", &node.node])["spec"]["podCIDR"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ep,
        cidr.replace(".0/24", ".1"),
        "kube-dns endpoint vs pod CIDR {cidr}"
    );
}

/// A headless service `web` with a named port, and a StatefulSet of busybox pods serving
/// nothing but answering readiness; `replicas` members.
fn web(replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "ports": [{"name": "http", "containerPort": 80}],
                }]}
            }
        }
    })
}

fn headless() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
}

/// The peer-finder loop of the seed's Go code, in sh: every second, the SRV targets of
/// `_http._tcp.web`, sorted; written to /tmp/peers (with a counter line) when they change.
const PEER_FINDER: &str = r#"
old=""; n=0
while true; do
  new=$(nslookup -type=srv _http._tcp.web.default.svc.cluster.local 2>/dev/null \
    | sed -n 's/.* \([^ ]*\.web\.default\.svc\.cluster\.local\)\.*$/\1/p' | sort -u | tr '\n' ' ')
  if [ "$new" != "$old" ]; then
    n=$((n+1)); printf '%s\n%s\n' "$n" "$new" > /tmp/peers.new; mv /tmp/peers.new /tmp/peers
    old="$new"
  fi
  sleep 1
done
"#;

/// The peer list the loop last wrote.
fn peers(kubectl: &Kubectl) -> Option<String> {
    let out = kubectl.exec("finder", "cat /tmp/peers").ok()?;
    Some(out.lines().nth(1).unwrap_or("").trim().to_string())
}

fn members(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n}.web.default.svc.cluster.local"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for the loop's list to become `want`; how long it took from `since`.
async fn peers_become(kubectl: &Kubectl, want: &str, since: Instant) -> Duration {
    wait_for(&format!("peers {want}"), T, || async {
        (peers(kubectl).as_deref() == Some(want)).then_some(())
    })
    .await
    .unwrap();
    let took = since.elapsed();
    eprintln!("peers {want:?} after {took:?}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_resolve_services_members_and_follow_peers_by_srv() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&node, dir.path());
    kubectl.apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front"},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"name": "http", "port": 80}]}}),
    );
    kubectl.apply(&headless());
    kubectl.apply(&web(2));
    kubectl.apply(&sleeper("client", json!({})));
    wait_running(&kubectl, &["client", "web-0", "web-1"]).await;
    let front = kubectl.json(&["get", "svc", "front"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    // A service by its short name (the search path) and by its full name.
    for name in ["front", "front.default.svc.cluster.local"] {
        let last = std::sync::Mutex::new(String::new());
        let out = wait_for(&format!("nslookup {name}"), T, || async {
            let out = kubectl.exec("client", &format!("nslookup {name}"));
            let text = match &out {
                Ok(o) | Err(o) => o.clone(),
            };
            *last.lock().unwrap() = text.clone();
            // busybox nslookup asks every search domain and fails when any says
            // NXDOMAIN, the answer found or not: the answer is what counts.
            text.contains(&format!("Address: {front}")).then_some(text)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", last.lock().unwrap()));
        assert!(out.contains("front.default.svc.cluster.local"), "{out}");
    }
    // SRV of the headless service: one target per member.
    let srv = wait_out(
        &kubectl,
        "nslookup -type=srv _http._tcp.web.default.svc.cluster.local",
        |o| {
            o.contains("web-0.web.default.svc.cluster.local")
                && o.contains("web-1.web.default.svc.cluster.local")
        },
    )
    .await;
    assert!(srv.contains(" 80 "), "{srv}");
    // A member by its stable name.
    let web0 = kubectl.json(&["get", "pod", "web-0"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = kubectl.out("client", "nslookup web-0.web.default.svc.cluster.local");
    assert!(out.contains(&web0), "{out}");

    // The peer-finder loop sees every change within 2 s.
    kubectl.apply(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "finder"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", PEER_FINDER]}]}
    }));
    wait_running(&kubectl, &["finder"]).await;
    peers_become(&kubectl, &members(&["web-0", "web-1"]), Instant::now()).await;

    // Scale up: web-2 appears once it is ready.
    kubectl.run(&["scale", "sts", "web", "--replicas=3"], None);
    wait_running(&kubectl, &["web-2"]).await;
    let took = peers_become(
        &kubectl,
        &members(&["web-0", "web-1", "web-2"]),
        Instant::now(),
    )
    .await;
    assert!(
        took < Duration::from_secs(2),
        "scale-up seen after {took:?}"
    );

    // Scale down: web-2 leaves.
    kubectl.run(&["scale", "sts", "web", "--replicas=2"], None);
    let since = Instant::now();
    let took = peers_become(&kubectl, &members(&["web-0", "web-1"]), since).await;
    assert!(
        took < Duration::from_secs(2),
        "scale-down seen after {took:?}"
    );

    // A member deleted comes back under its name with a new address; the loop sees it
    // go and come back.
    let old_ip = kubectl.json(&["get", "pod", "web-1"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let old_uid = kubectl.json(&["get", "pod", "web-1"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    kubectl.run(&["delete", "pod", "web-1", "--wait=false"], None);
    let since = Instant::now();
    let took = peers_become(&kubectl, &members(&["web-0"]), since).await;
    assert!(
        took < Duration::from_secs(2),
        "deletion seen after {took:?}"
    );
    let new_ip = wait_for("web-1 again, ready, with a new address", T, || async {
        let pod = kubectl
            .try_run(&["get", "pod", "web-1", "-o", "json"], None)
            .ok()?;
        let pod: Value = serde_json::from_str(&pod).ok()?;
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && pod["metadata"]["uid"] != old_uid.as_str())
            .then(|| pod["status"]["podIP"].as_str().map(str::to_string))
            .flatten()
    })
    .await
    .unwrap();
    assert_ne!(new_ip, old_ip);
    let took = peers_become(&kubectl, &members(&["web-0", "web-1"]), Instant::now()).await;
    assert!(
        took < Duration::from_secs(2),
        "re-created member seen after {took:?}"
    );
    // And its name has the new address.
    let out = wait_for("web-1's new address", Duration::from_secs(2), || async {
        Some(kubectl.out("client", "nslookup web-1.web.default.svc.cluster.local"))
            .filter(|o| o.contains(&new_ip))
    })
    .await
    .unwrap();
    assert!(!out.contains(&format!("Address: {old_ip}\n")), "{out}");
}

fn dig(server: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{server}"))
        .args(["+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig (Debian package dnsutils) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_reaches_the_nodes_server_at_the_kube_dns_address() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&node, dir.path());
    let ip = wait_for("kube-dns", T, || async {
        kubectl
            .try_run(&["get", "svc", "-n", "kube-system", "kube-dns"], None)
            .ok()
            .map(|_| kube_dns_ip(&kubectl))
    })
    .await
    .unwrap();
    let api_ip = kubectl.json(&["get", "svc", "kubernetes"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    // UDP, then TCP, both through the proxy's rule for the kube-dns address.
    for transport in ["+notcp", "+tcp"] {
        let answer = wait_for(&format!("dig {transport}"), T, || async {
            let out = dig(
                &ip,
                &[transport, "+short", "kubernetes.default.svc.cluster.local"],
            );
            (out.trim() == api_ip).then_some(out)
        })
        .await
        .unwrap();
        assert_eq!(answer.trim(), api_ip);
    }
    // kube-dns names itself.
    let out = dig(&ip, &["+short", "kube-dns.kube-system.svc.cluster.local"]);
    assert_eq!(out.trim(), ip);
    // The rule is in the proxy's chain.
    let save = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let save = String::from_utf8_lossy(&save.stdout);
    assert!(
        save.lines()
            .any(|l| l.contains(&format!("-d {ip}/32 -p udp")) && l.contains("--dport 53 -j DNAT")),
        "no DNS rule for {ip}"
    );
}
