#!/usr/bin/env bash
# Installs MiniK8s as systemd services: the API server and the kubelet on this machine,
# or only the kubelet on a node that joins an API server elsewhere.
#
#   deploy/install-services.sh                       API server + kubelet, started now
#   deploy/install-services.sh --server URL          only the kubelet, for the API server at URL
#
# Options:
#   --server URL    install only the kubelet and point it at URL
#   --root DIR      install under DIR instead of / (nothing is started)
#   --bin-dir DIR   take the binaries from DIR instead of building release binaries
#   --no-start      install and enable, but start nothing
#
# Binaries go to /usr/local/bin as minik8s-apiserver and minik8s-kubelet (prefixed, so
# that they never stand in for Kubernetes' own), units to /etc/systemd/system, settings to
# /etc/default/minik8s-{apiserver,kubelet} (written only when missing: edits are kept).
set -euo pipefail
cd "$(dirname "$0")/.."

server=""
root=""
bin_dir=""
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server="$2"; shift 2 ;;
    --root) root="$2"; start=0; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install-services.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$bin_dir" ]; then
  ./deploy/install-deps.sh
  cargo build --release --bin apiserver --bin kubelet
  ./deploy/images.sh
  bin_dir=target/release
fi

install -d "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/default"
install -m 0755 "$bin_dir/kubelet" "$root/usr/local/bin/minik8s-kubelet"
install -m 0644 deploy/systemd/minik8s-kubelet.service "$root/etc/systemd/system/"
units=(minik8s-kubelet.service)
if [ -z "$server" ]; then
  install -m 0755 "$bin_dir/apiserver" "$root/usr/local/bin/minik8s-apiserver"
  install -m 0644 deploy/systemd/minik8s-apiserver.service "$root/etc/systemd/system/"
  units=(minik8s-apiserver.service "${units[@]}")
  if [ ! -e "$root/etc/default/minik8s-apiserver" ]; then
    cat >"$root/etc/default/minik8s-apiserver" <<'CONF'
MINIK8S_LISTEN=127.0.0.1:6443
MINIK8S_DATA_DIR=/var/lib/minik8s
CONF
  fi
  server="http://127.0.0.1:6443"
fi
if [ ! -e "$root/etc/default/minik8s-kubelet" ]; then
  cat >"$root/etc/default/minik8s-kubelet" <<CONF
MINIK8S_SERVER=$server
MINIK8S_KUBELET_ARGS=--root-dir /var/lib/minik8s/kubelet
CONF
fi

if [ -n "$root" ]; then
  echo "installed under $root: ${units[*]}"
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "installed ${units[*]}; systemd is not running here, so nothing was started" >&2
  exit 0
fi
systemctl daemon-reload
if [ "$start" = 1 ]; then
  systemctl enable --now "${units[@]}"
  echo "started ${units[*]}; follow them with: journalctl -fu minik8s-kubelet"
else
  systemctl enable "${units[@]}"
fi
