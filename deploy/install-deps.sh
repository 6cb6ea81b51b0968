#!/usr/bin/env bash
# Installs the Debian packages MiniK8s needs to build and test: protoc (the etcd client's
# build), etcd (tests and multi-member deployments), Docker (the kubelet's runtime),
# iproute2 and iptables (the kubelet's routes and rules between nodes), a static busybox
# (the test image, see deploy/images.sh), systemd-analyze (the unit checks) and the
# Python kubernetes client (a compatibility test); starts Docker's daemon if none
# answers. Safe to run again; quiet when there is nothing to do.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# The kubelet routes other nodes' pod networks and lets their traffic through.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# systemd-analyze checks the service units (deploy/systemd/) in the tests.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The Python kubernetes client, for the client compatibility test.
/usr/bin/python3 -c 'import kubernetes' >/dev/null 2>&1 || need+=(python3-kubernetes)
# The test image needs a busybox that runs without a C library next to it.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  need+=(busybox-static)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
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
