#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the store conformance suite on the embedded store
# and on a real etcd, and the end-to-end API tests (real kubectl, kube-rs).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
