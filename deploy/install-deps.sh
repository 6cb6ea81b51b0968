#!/usr/bin/env bash
# Installs the Debian packages MiniK8s needs to build and test: protoc and protobuf's
# well-known .proto files (the etcd client's build), etcd (tests and multi-member
# deployments), Docker (the kubelet's runtime), iproute2 and iptables (the kubelet's routes
# and rules between nodes), a static busybox (the test image, see deploy/images.sh),
# systemd-analyze (the unit checks), the Python kubernetes client (a compatibility
# test), wrk (proxy-bench's load), and dig, dnsperf and dnsmasq (the cluster DNS tests
# and dns-bench's load and baseline); starts Docker's daemon if none answers. Safe to
# run again; quiet when there is nothing to do.
#
# What is missing is decided by package, not by whether a command exists: a command can
# be there while a file its package ships with (descriptor.proto, say) is not.
#
#   MINIK8S_DEPS_NO_DOCKER=1  install only; do not start Docker (a chroot check uses it)
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(
  gcc                # the linker rustc calls (cc), and C code some crates build
  libc6-dev          # the C library's headers and startup files that linking needs
  protobuf-compiler  # protoc, for the etcd client's build
  libprotobuf-dev    # google/protobuf/*.proto that the etcd client's protos import
  etcd-server        # etcd, for tests and multi-member deployments
  docker.io          # dockerd, the kubelet's runtime
  iproute2           # ip: routes to other nodes' pod networks
  iptables           # rules that let other nodes' pod traffic through
  busybox-static     # the test image (deploy/images.sh)
  systemd            # systemd-analyze checks the units in deploy/systemd/
  python3-kubernetes # the Python client compatibility test
  wrk                # the HTTP load of proxy-bench (cluster IP against pod IP)
  dnsutils           # dig, the cluster DNS tests' client
  dnsperf            # dns-bench's load
  dnsmasq-base       # dnsmasq without its system service: upstream and baseline of the DNS tests
)
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
need=()
for p in "${packages[@]}"; do
  installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "${MINIK8S_DEPS_NO_DOCKER:-}" = 1 ] && exit 0

# Debian's etcd-server starts a system etcd on the default ports; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl stop etcd || true
fi

# Docker's daemon: through systemd where it runs, else started in the background.
if ! $SUDO docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "starting docker"
    $SUDO systemctl start docker
  else
    echo "starting dockerd (log: /var/log/minik8s-dockerd.log)"
    $SUDO sh -c 'nohup dockerd >>/var/log/minik8s-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    $SUDO docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! $SUDO docker info >/dev/null 2>&1; then
    echo "Docker's daemon does not answer; see /var/log/minik8s-dockerd.log or 'systemctl status docker'" >&2
    exit 1
  fi
fi
