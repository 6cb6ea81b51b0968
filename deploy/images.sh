#!/usr/bin/env bash
# Builds the container images MiniK8s needs, locally: no registry is involved.
#
#   minik8s/pause:<version>   the project's own static `pause` program, alone in an image
#   minik8s/busybox:latest    Debian's busybox-static with its applets linked in /bin
#
# Images that exist already are kept (`--force` rebuilds them). Several processes may run
# this at once (parallel test binaries): a lock makes them take turns, and the later ones
# find the images built.
#
#   MINIK8S_PAUSE_IMAGE    the pause image's name (default minik8s/pause:<workspace version>)
#   MINIK8S_BUSYBOX_IMAGE  the test image's name  (default minik8s/busybox:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

force=0
[ "${1:-}" = "--force" ] && force=1

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
pause_image="${MINIK8S_PAUSE_IMAGE:-minik8s/pause:${version}}"
busybox_image="${MINIK8S_BUSYBOX_IMAGE:-minik8s/busybox:latest}"

lock="${TMPDIR:-/tmp}/minik8s-images.lock"
exec 9>"$lock"
flock 9

have() { docker image inspect "$1" >/dev/null 2>&1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

host="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$force" = 1 ] || ! have "$pause_image"; then
  echo "building $pause_image" >&2
  # `--target` keeps RUSTFLAGS away from build scripts, which cannot link statically.
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --quiet --release -p minik8s-pause \
      --target "$host" --target-dir "$root/target/static"
  mkdir -p "$work/pause"
  cp "$root/target/static/$host/release/pause" "$work/pause/pause"
  tar -C "$work/pause" -c . |
    docker import --change 'ENTRYPOINT ["/pause"]' - "$pause_image" >/dev/null
fi

if [ "$force" = 1 ] || ! have "$busybox_image"; then
  echo "building $busybox_image" >&2
  busybox="$(command -v busybox || true)"
  [ -n "$busybox" ] || { echo "busybox not found: install busybox-static" >&2; exit 1; }
  if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is dynamically linked: install busybox-static" >&2
    exit 1
  fi
  fs="$work/busybox"
  mkdir -p "$fs/bin" "$fs/etc" "$fs/tmp" "$fs/root" "$fs/var" "$fs/proc" "$fs/sys" "$fs/dev"
  chmod 1777 "$fs/tmp"
  cp "$busybox" "$fs/bin/busybox"
  for applet in $("$fs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$fs/bin/$applet"
  done
  ln -s bin "$fs/sbin"
  mkdir -p "$fs/usr"
  ln -s ../bin "$fs/usr/bin"
  ln -s ../bin "$fs/usr/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$fs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$fs/etc/group"
  tar -C "$fs" -c . |
    docker import --change 'CMD ["sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      - "$busybox_image" >/dev/null
fi
