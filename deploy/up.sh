#!/usr/bin/env bash
# Brings up a one-node MiniK8s cluster on this machine: installs what is missing
# (Docker, etcd, protoc), builds MiniK8s and its local images (no registry is needed),
# and runs `minik8s up` — the API server on the embedded store, its scheduler and
# controllers, and a kubelet for this machine — in the foreground. Stop it with Ctrl-C;
# objects persist in the data directory, and running pods are adopted on the next start.
#
#   MINIK8S_LISTEN    address of the API server  (default 127.0.0.1:6443)
#   MINIK8S_DATA_DIR  store, pod directories, kubeconfig (default ~/.local/share/minik8s)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cargo build --release --bin minik8s --bin kubectl --bin apiserver --bin kubelet
./deploy/images.sh
exec ./target/release/minik8s up --listen "${MINIK8S_LISTEN:-127.0.0.1:6443}" "$@"
