#!/usr/bin/env bash
# Proves deploy/install-deps.sh on a truly empty Debian 12: makes a minimal bookworm root
# with debootstrap, runs install-deps.sh inside it (chroot, MINIK8S_DEPS_NO_DOCKER=1: install
# only), then checks that protoc compiles a file importing google/protobuf/descriptor.proto
# (what the etcd client's build needs) and that etcd, dockerd, iptables, ip and busybox run.
# Takes minutes (it downloads and installs a few hundred packages).
#
# On success it records the checksums of what it proved in deploy/fresh-root.checked;
# .ci/run runs this check whenever those files differ from the recorded ones
# (`sha256sum --check deploy/fresh-root.checked`). Commit the updated file with the change.
#
# Needs root (or sudo) and installs debootstrap if it is missing. The Debian mirror is
# the one apt uses on this machine; MINIK8S_DEBIAN_MIRROR overrides it. The root is made
# under ${TMPDIR:-/var/tmp} and removed on every exit; what is mounted for the commands in
# it (/proc, /sys, a pty instance) is mounted in a mount namespace of their own, which
# goes away with them, so nothing stays mounted even if this script is killed.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
checked=(deploy/install-deps.sh deploy/check-fresh-root.sh)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q 'ok installed'; then
  echo "installing: debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    debootstrap debian-archive-keyring >/dev/null
fi

# The mirror apt is configured with (either sources format): the repository of the
# suite itself, else any Debian repository (a mirror serves every suite).
mirror="${MINIK8S_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  targets="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(LABEL)' | sort -u)"
  mirror="$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$targets")"
  [ -n "$mirror" ] || mirror="$(awk '$3 == "Debian" { print $1; exit }' <<<"$targets")"
fi
if [ -z "$mirror" ]; then
  echo "no Debian mirror in apt's sources; set MINIK8S_DEBIAN_MIRROR" >&2
  exit 1
fi

root="$($SUDO mktemp -d "${TMPDIR:-/var/tmp}/minik8s-fresh-root.XXXXXX")"
$SUDO chmod 755 "$root" # apt's downloads run as the _apt user

# Every mount under the root, deepest first.
mounts_under_root() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
cleanup() {
  local m
  rm -f "$root.log"
  for m in $(mounts_under_root); do
    $SUDO umount "$m" 2>/dev/null || $SUDO umount -l "$m" || true
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "still mounted under $root, not removing it:" >&2
    mounts_under_root >&2
    return
  fi
  # --one-file-system: nothing of the host is ever removed through a mount.
  $SUDO rm -rf --one-file-system "$root"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
echo "debootstrap $SUITE from $mirror into $root"
# In a mount namespace of its own: the /proc it mounts inside the root goes with it.
if ! $SUDO unshare --mount --propagation private \
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1; then
  tail -n 30 "$root.log" >&2
  rm -f "$root.log"
  exit 1
fi
rm -f "$root.log"
echo "debootstrap took $((SECONDS - start)) s"

$SUDO cp /etc/resolv.conf "$root/etc/resolv.conf"
# Package scripts must not start services (etcd, dockerd) from inside the chroot.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$root/usr/sbin/policy-rc.d" >/dev/null
$SUDO chmod 755 "$root/usr/sbin/policy-rc.d"
$SUDO mkdir -p "$root/check"
$SUDO cp deploy/install-deps.sh "$root/check/install-deps.sh"

# A command in the root, with /proc, /sys and a pty instance of its own (debootstrap made
# the device nodes), all mounted in a private mount namespace that ends with it.
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner shell
  $SUDO unshare --mount --propagation private -- sh -c '
    r=$1; shift
    mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" &&
      mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" &&
      exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' sh "$root" "$@"
}

step=$SECONDS
in_root MINIK8S_DEPS_NO_DOCKER=1 bash /check/install-deps.sh
echo "install-deps.sh took $((SECONDS - step)) s"

# What the etcd client's protos do: import a well-known type, found by protoc on its own.
in_root sh -c 'cat >/check/check.proto' <<'EOF'
syntax = "proto3";
package check;
import "google/protobuf/descriptor.proto";
extend google.protobuf.FieldOptions { bool checked = 50000; }
message M { string s = 1 [(checked) = true]; }
EOF
in_root protoc -I/check --descriptor_set_out=/check/check.pb /check/check.proto
in_root etcd --version >/dev/null
in_root dockerd --version >/dev/null
in_root iptables --version >/dev/null
in_root ip -V >/dev/null
in_root busybox true
# Run once more: with everything there it installs nothing.
again="$(in_root MINIK8S_DEPS_NO_DOCKER=1 bash /check/install-deps.sh)"
if [ -n "$again" ]; then
  echo "install-deps.sh installed again on a second run: $again" >&2
  exit 1
fi

sha256sum "${checked[@]}" >deploy/fresh-root.checked
echo "fresh $SUITE root: install-deps.sh installs what the build and tests need" \
  "($((SECONDS - start)) s); recorded in deploy/fresh-root.checked"
