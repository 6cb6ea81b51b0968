#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the store conformance suite on the embedded store
# and on a real etcd, and the end-to-end API tests (real kubectl, kube-rs).
#
# The suite must leave the machine's Docker as it found it: if the system daemon's default
# bridge (docker0) was there before, the same interface must be there after, or the run
# fails (a Docker daemon started with --bridge=none deletes it).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh

default_bridge() {
  local name
  name="$(docker network inspect bridge \
    --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)"
  [ -n "$name" ] && cat "/sys/class/net/$name/ifindex" 2>/dev/null && echo "$name"
}
before="$(default_bridge || true)"

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi

after="$(default_bridge || true)"
if [ -n "$before" ] && [ "$after" != "$before" ]; then
  echo "the test run removed or replaced Docker's default bridge ($(tail -n 1 <<<"$before")):" \
    "containers on Docker's default network fail until dockerd restarts" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
