use super::*;
use serde_json::json;

fn cm() -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.conf": "mode=fast\n", "level": "3"},
        "binaryData": {"blob": "AAEC"}
    }))
    .unwrap()
}

fn secret() -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"password": "czNjcjN0"}
    }))
    .unwrap()
}

fn source<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn summary(p: &Payload) -> Vec<String> {
    p.iter()
        .map(|(k, f)| format!("{k} {:o} {:?}", f.mode, String::from_utf8_lossy(&f.data)))
        .collect()
}

#[test]
fn every_key_or_the_items_with_their_modes() {
    let all =
        config_map_payload(&source(json!({"name": "cfg", "defaultMode": 0o640})), &cm()).unwrap();
    assert_eq!(
        summary(&all),
        [
            "app.conf 640 \"mode=fast\\n\"",
            "blob 640 \"\\0\\u{1}\\u{2}\"",
            "level 640 \"3\""
        ]
    );
    let items = config_map_payload(
        &source(json!({"name": "cfg", "defaultMode": 0o644, "items": [
            {"key": "app.conf", "path": "etc/app.conf", "mode": 0o400},
            {"key": "level", "path": "level.txt"}
        ]})),
        &cm(),
    )
    .unwrap();
    assert_eq!(
        summary(&items),
        ["etc/app.conf 400 \"mode=fast\\n\"", "level.txt 644 \"3\""]
    );
    let missing = source(json!({"name": "cfg", "items": [{"key": "nope", "path": "x"}]}));
    assert_eq!(
        config_map_payload(&missing, &cm()).unwrap_err(),
        "configmap references non-existent config key: nope"
    );
    let optional = source(json!({"name": "cfg", "optional": true,
                                 "items": [{"key": "nope", "path": "x"}]}));
    assert!(config_map_payload(&optional, &cm()).unwrap().is_empty());
    let s = secret_payload(&source(json!({"secretName": "creds"})), &secret()).unwrap();
    assert_eq!(summary(&s), ["password 644 \"s3cr3t\""]);
    let missing = source(json!({"secretName": "creds", "items": [{"key": "user", "path": "u"}]}));
    assert_eq!(
        secret_payload(&missing, &secret()).unwrap_err(),
        "secret references non-existent secret key: user"
    );
}

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "c", "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "creds", "mountPath": "/creds", "readOnly": false}
        ]}], "volumes": volumes}
    }))
    .unwrap()
}

#[tokio::test]
async fn volumes_wait_for_their_objects_then_follow_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let p = pod(json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}
    ]));
    let objects = ConfigObjects::fixed(vec![], vec![]);
    let err = set_up(&p, root, &objects).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found"
    );
    objects.apply_config_map(cm());
    let err = set_up(&p, root, &objects).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"creds\" : secret \"creds\" not found"
    );
    objects.apply_secret(secret());
    assert!(set_up(&p, root, &objects).await.unwrap().is_empty());

    let cfg = dir(
        root,
        "u1",
        &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0],
    )
    .unwrap();
    let creds = dir(
        root,
        "u1",
        &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[2],
    )
    .unwrap();
    assert!(cfg.ends_with("pods/u1/volumes/kubernetes.io~configmap/cfg"));
    assert_eq!(std::fs::read_to_string(cfg.join("level")).unwrap(), "3");
    assert_eq!(
        std::fs::read_to_string(creds.join("password")).unwrap(),
        "s3cr3t"
    );
    let mode = std::fs::metadata(creds.join("password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    let parent = std::fs::metadata(creds.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(parent & 0o777, 0o700);

    // An edit reaches the files; a deletion later keeps the last ones, with a warning.
    let mut edited = cm();
    edited
        .data
        .as_mut()
        .unwrap()
        .insert("level".into(), "4".into());
    objects.apply_config_map(edited.clone());
    assert!(set_up(&p, root, &objects).await.unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(cfg.join("level")).unwrap(), "4");
    objects.remove_config_map(&edited);
    let warnings = set_up(&p, root, &objects).await.unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(std::fs::read_to_string(cfg.join("level")).unwrap(), "4");

    tear_down(&pod_dir(root, "u1"));
    assert!(!is_mount_point(&creds));
    std::fs::remove_dir_all(pod_dir(root, "u1")).unwrap();
}

#[tokio::test]
async fn optional_sources_may_be_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pod(json!([
        {"name": "cfg", "configMap": {"name": "nope", "optional": true}}
    ]));
    let objects = ConfigObjects::fixed(vec![], vec![]);
    assert!(set_up(&p, tmp.path(), &objects).await.unwrap().is_empty());
    let cfg = pod_dir(tmp.path(), "u1").join(CONFIG_MAP_DIR).join("cfg");
    assert!(cfg.join("..data").is_dir());
}

#[test]
fn config_and_secret_mounts_are_read_only() {
    let p = pod(json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "creds", "secret": {"secretName": "creds"}}
    ]));
    let c = &p.spec.as_ref().unwrap().containers[0];
    let mut mounts: Vec<BindMount> = ["/etc/cfg", "/scratch", "/creds"]
        .iter()
        .map(|t| BindMount {
            source: PathBuf::from("/x"),
            target: t.to_string(),
            read_only: false,
        })
        .collect();
    force_read_only(&p, c, &mut mounts);
    let ro: Vec<bool> = mounts.iter().map(|m| m.read_only).collect();
    assert_eq!(ro, [true, false, true]);
}

#[tokio::test(start_paused = true)]
async fn written_volumes_stay_usable_while_the_objects_were_never_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "cfg"}}]));
    let listed = ConfigObjects::fixed(vec![cm()], vec![]);
    assert!(set_up(&p, tmp.path(), &listed).await.unwrap().is_empty());
    // A restarted kubelet whose API server is away.
    let unlisted = ConfigObjects::fixed(vec![], vec![]);
    unlisted.set_listed(false, false);
    let warnings = set_up(&p, tmp.path(), &unlisted).await.unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .message
            .contains("failed to sync configmap cache"),
        "{:?}",
        warnings
    );
    // A new pod's volume must wait.
    let other = tempfile::tempdir().unwrap();
    assert!(set_up(&p, other.path(), &unlisted).await.is_err());
}
