//! Rendering, membership and the in-place write of hosts files.

use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::*;
use crate::runtime::FakeRuntime;

fn member(pod: &str, uid: &str, hostname: &str, ip: Option<&str>) -> Member {
    Member {
        pod: pod.into(),
        uid: uid.into(),
        hostname: hostname.into(),
        ip: ip.map(|ip| ip.parse().unwrap()),
    }
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

const EXAMPLE: &str = "127.0.0.1 localhost
::1     localhost ip6-localhost ip6-loopback
fe00::0 ip6-localnet
fe00::0 ip6-mcastprefix
fe00::1 ip6-allnodes
fe00::2 ip6-allrouters
10.244.0.6   role1-0 role1-0.demo
10.244.1.8   role2-0 role2-0.demo
10.244.0.7   role2-1 role2-1.demo
";

fn example_members() -> Vec<Member> {
    vec![
        member("demo-role2-1", "u3", "role2-1", Some("10.244.0.7")),
        member("demo-role1-0", "u1", "role1-0", Some("10.244.0.6")),
        member("demo-role2-0", "u2", "role2-0", Some("10.244.1.8")),
    ]
}

#[test]
fn renders_the_group_sorted_by_name() {
    let own = member("demo-role1-0", "u1", "role1-0", None);
    let entries = entries(&own, &example_members(), &HashMap::new());
    assert_eq!(render(&entries, Some("demo"), &[]), EXAMPLE);
    assert_eq!(
        peer_list(&entries),
        "10.244.0.6 role1-0\n10.244.1.8 role2-0\n10.244.0.7 role2-1\n"
    );
}

#[test]
fn membership_uses_local_addresses_and_leaves_out_members_without_one() {
    // Own address from Docker before the API server has it; a peer of this node whose
    // worker knows its new address; a peer with no address yet.
    let own = member("demo-role1-0", "u1", "role1-0", Some("10.244.0.9"));
    let known = vec![
        member("demo-role1-0", "u1", "role1-0", None),
        member("demo-role2-0", "u2", "role2-0", Some("10.244.0.3")),
        member("demo-role2-1", "u3", "role2-1", None),
    ];
    let local = HashMap::from([("u2".to_string(), "10.244.0.4".parse().unwrap())]);
    let e = entries(&own, &known, &local);
    let names: Vec<String> = e
        .iter()
        .map(|e| format!("{} {}", e.ip, e.hostname))
        .collect();
    assert_eq!(names, ["10.244.0.9 role1-0", "10.244.0.4 role2-0"]);

    // The own pod without an address of its own takes the API's, but not that of an
    // older pod of the same name.
    let own = member("demo-role2-1", "u3-new", "role2-1", None);
    let known = vec![member(
        "demo-role2-1",
        "u3-old",
        "role2-1",
        Some("10.244.0.5"),
    )];
    assert!(entries(&own, &known, &HashMap::new()).is_empty());
    let own = member("demo-role2-1", "u3-old", "role2-1", None);
    assert_eq!(entries(&own, &known, &HashMap::new()).len(), 1);
}

#[test]
fn groups_and_listed_pods() {
    let p = pod(
        json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u"},
        "spec": {"hostname": "h", "subdomain": "demo", "containers": []},
        "status": {"podIP": "10.1.0.2", "phase": "Running"}}),
    );
    assert_eq!(
        group_of(&p),
        Some(GroupKey {
            namespace: "ns".into(),
            subdomain: "demo".into()
        })
    );
    assert_eq!(Member::of(&p), member("a", "u", "h", Some("10.1.0.2")));
    assert!(is_listed(&p));
    let failed = pod(json!({"metadata": {"name": "a"},
        "spec": {"subdomain": "", "containers": []}, "status": {"phase": "Failed"}}));
    assert!(!is_listed(&failed));
    assert_eq!(group_of(&failed), None);
    assert_eq!(Member::of(&failed).hostname, "a");
}

#[test]
fn a_pod_without_subdomain_and_host_aliases() {
    let own = member("web", "u", "web", Some("10.1.0.2"));
    let aliases: Vec<HostAlias> = serde_json::from_value(json!([
        {"ip": "10.9.9.9", "hostnames": ["foo.local", "bar.local"]},
        {"ip": "10.9.9.8", "hostnames": ["baz"]}
    ]))
    .unwrap();
    let text = render(&entries(&own, &[], &HashMap::new()), None, &aliases);
    assert!(text.starts_with(LOCALHOST));
    assert_eq!(
        &text[LOCALHOST.len()..],
        "10.1.0.2   web\n\n# Entries added by HostAliases.\n10.9.9.9\tfoo.local\tbar.local\n10.9.9.8\tbaz\n"
    );
}

#[test]
fn padding_keeps_the_length_and_is_a_comment() {
    assert_eq!(pad("a\n", 1), b"a\n");
    assert_eq!(pad("a\n", 3), b"a\n\n");
    assert_eq!(pad("a\n", 4), b"a\n#\n");
    assert_eq!(pad("a\n", 8), b"a\n#    \n");
    for len in [0, 2, 3, 4, 9] {
        let padded = String::from_utf8(pad("a\n", len)).unwrap();
        assert_eq!(unpadded(&padded), "a\n", "{padded:?}");
    }
    assert_eq!(unpadded(EXAMPLE), EXAMPLE);
}

#[test]
fn writes_in_place_through_shrink_and_growth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HOSTS_FILE);
    assert!(write_in_place(&path, EXAMPLE).unwrap());
    let inode = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXAMPLE);
    // A reader holding the file open (as a bind mount does) sees every version.
    let held = std::fs::File::open(&path).unwrap();
    let read_held = || {
        let mut buf = vec![0; 4096];
        let n = held.read_at(&mut buf, 0).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };

    let shorter = format!("{LOCALHOST}10.244.0.6   role1-0 role1-0.demo\n");
    assert!(write_in_place(&path, &shorter).unwrap());
    let text = read_held();
    assert_eq!(text.len(), EXAMPLE.len(), "never shrinks");
    assert_eq!(unpadded(&text), shorter);
    assert!(!write_in_place(&path, &shorter).unwrap(), "unchanged");

    let longer = format!("{EXAMPLE}10.244.2.2   role3-0 role3-0.demo\n");
    assert!(write_in_place(&path, &longer).unwrap());
    assert_eq!(read_held(), longer);
    // Shrinking by one byte: the padding is a lone newline.
    let one_less = longer.replacen("10.244.2.2", "10.244.2.", 1);
    assert!(write_in_place(&path, &one_less).unwrap());
    assert_eq!(read_held(), format!("{one_less}\n"));
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
}

#[tokio::test]
async fn files_of_a_node_follow_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = Hosts::new(
        None,
        Arc::new(FakeRuntime::new()),
        Recorder::discard("n"),
        "n",
        dir.path(),
    );
    let a = pod(
        json!({"metadata": {"name": "demo-role1-0", "namespace": "default", "uid": "ua"},
        "spec": {"hostname": "role1-0", "subdomain": "demo", "containers": []}}),
    );
    let b = pod(
        json!({"metadata": {"name": "demo-role2-0", "namespace": "default", "uid": "ub"},
        "spec": {"hostname": "role2-0", "subdomain": "demo", "containers": []}}),
    );
    let path_a = hosts.prepare(&a, None).await.unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&path_a).unwrap(), LOCALHOST);
    hosts
        .prepare(&a, Some("10.1.0.2".parse().unwrap()))
        .await
        .unwrap();
    let path_b = hosts
        .prepare(&b, Some("10.1.0.3".parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let both =
        format!("{LOCALHOST}10.1.0.2   role1-0 role1-0.demo\n10.1.0.3   role2-0 role2-0.demo\n");
    assert_eq!(std::fs::read_to_string(&path_a).unwrap(), both);
    assert_eq!(std::fs::read_to_string(&path_b).unwrap(), both);
    // The second pod is gone from the node: the first one's file forgets it.
    hosts.forget("ub");
    let text = std::fs::read_to_string(&path_a).unwrap();
    assert_eq!(
        unpadded(&text),
        format!("{LOCALHOST}10.1.0.2   role1-0 role1-0.demo\n")
    );
    assert_eq!(text.len(), both.len());
    hosts.forget("ua");
    assert!(hosts.lock().groups.is_empty());
    // A hostNetwork pod keeps the host's file.
    let host = pod(json!({"metadata": {"name": "h", "uid": "uh"},
        "spec": {"hostNetwork": true, "containers": []}}));
    assert_eq!(hosts.prepare(&host, None).await.unwrap(), None);
}

#[test]
fn a_pod_with_a_subdomain_has_its_fully_qualified_line_as_kubernetes_writes_it() {
    let own = own_line(
        "10.1.0.5".parse().unwrap(),
        "web-0",
        "web",
        "shop",
        "cluster.local",
    );
    assert_eq!(own, "10.1.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n");
    let entries = [Entry {
        hostname: "web-0".into(),
        ip: "10.1.0.5".parse().unwrap(),
    }];
    let text = render_with_own(Some(&own), &entries, Some("web"), &[]);
    assert!(text.ends_with(
        "fe00::2 ip6-allrouters\n10.1.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n10.1.0.5   web-0 web-0.web\n"
    ));
}
