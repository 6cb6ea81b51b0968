#!/usr/bin/env bash
# Brings up MiniK8s on this machine: builds it and runs the API server on the embedded
# store (one redb file under the data directory). Stop it with Ctrl-C; objects persist.
#
#   MINIK8S_LISTEN    address to serve on        (default 127.0.0.1:6443)
#   MINIK8S_DATA_DIR  where the store file lives (default ~/.local/share/minik8s)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cargo build --release --bin apiserver
listen="${MINIK8S_LISTEN:-127.0.0.1:6443}"
data="${MINIK8S_DATA_DIR:-$HOME/.local/share/minik8s}"
echo "MiniK8s API at http://$listen (store: $data/minik8s.redb)"
echo "try: kubectl -s http://$listen get namespaces"
exec ./target/release/apiserver --listen "$listen" --data-dir "$data"
