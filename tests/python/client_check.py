"""The Python `kubernetes` client against a MiniK8s API server.

Usage: client_check.py KUBECONFIG

Creates, lists, watches, patches, replaces and deletes pods through the generated
CoreV1Api, checks that the errors arrive as the client's ApiException with Kubernetes'
codes and reasons, and prints "ok". Any difference raises.
"""

import json
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
NS = "default"


def pod(name, containers=None):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=client.V1PodSpec(
            containers=containers
            if containers is not None
            else [client.V1Container(name="c", image="busybox", command=["sleep", "3600"])]
        ),
    )


def api_error(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as e:
        return e.status, json.loads(e.body)
    raise AssertionError(f"{call.__name__} did not fail")


created = v1.create_namespaced_pod(NS, pod("a"))
assert created.metadata.uid, created.metadata
assert created.metadata.creation_timestamp is not None
assert created.spec.containers[0].image_pull_policy == "Always"

listed = v1.list_namespaced_pod(NS, label_selector="app=py")
assert [p.metadata.name for p in listed.items] == ["a"], listed.items
everywhere = v1.list_pod_for_all_namespaces(field_selector="metadata.name=a")
assert [p.metadata.namespace for p in everywhere.items] == [NS]

# A watch from the list's version sees what follows, in order.
events = []
stream = watch.Watch()


def follow():
    for event in stream.stream(
        v1.list_namespaced_pod,
        NS,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 3:
            stream.stop()


follower = threading.Thread(target=follow)
follower.start()
v1.create_namespaced_pod(NS, pod("b"))
patched = v1.patch_namespaced_pod("b", NS, {"metadata": {"labels": {"step": "2"}}})
assert patched.metadata.labels == {"app": "py", "step": "2"}, patched.metadata.labels
v1.delete_namespaced_pod("b", NS)
follower.join(30)
assert events == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")], events

# Errors: Kubernetes' codes and reasons, in a Status body.
status, body = api_error(v1.read_namespaced_pod, "missing", NS)
assert (status, body["reason"]) == (404, "NotFound"), body
status, body = api_error(v1.create_namespaced_pod, NS, pod("a"))
assert (status, body["reason"]) == (409, "AlreadyExists"), body

current = v1.read_namespaced_pod("a", NS)
stale = v1.read_namespaced_pod("a", NS)
current.metadata.labels["round"] = "1"
v1.replace_namespaced_pod("a", NS, current)
stale.metadata.labels["round"] = "2"
status, body = api_error(v1.replace_namespaced_pod, "a", NS, stale)
assert (status, body["reason"]) == (409, "Conflict"), body

bad = pod("Bad_Name", containers=[])
status, body = api_error(v1.create_namespaced_pod, NS, bad)
assert (status, body["reason"]) == (422, "Invalid"), body
fields = sorted(c["field"] for c in body["details"]["causes"])
assert fields == ["metadata.name", "spec.containers"], fields

nodes = v1.list_node()
assert nodes.items == [], nodes.items
namespaces = [n.metadata.name for n in v1.list_namespace().items]
assert "default" in namespaces and "kube-system" in namespaces, namespaces

v1.delete_namespaced_pod("a", NS)
assert v1.list_namespaced_pod(NS, label_selector="app=py").items == []
print("ok")
