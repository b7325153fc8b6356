#!/usr/bin/env bash
# Builds the evlog:dev image FROM scratch out of locally built release binaries.
#
#   deploy/docker/build-image.sh [BIN_DIR]
#
# BIN_DIR holds evlog-node (required) and evlog (optional, included when present);
# default: $HOME/.cache/evlog/target/release. Env: IMAGE (default evlog:dev).
#
# No registry is needed: the build context is a rootfs.tar holding the binaries, exactly
# the shared libraries `ldd` lists for them, the dynamic loader, a minimal /etc (passwd,
# group, nsswitch.conf), /tmp, and /var/lib/evlog owned by uid/gid 10001. The binaries
# must be built for (and their libraries taken from) this machine's glibc.
set -euo pipefail

readonly BIN_DIR="${1:-$HOME/.cache/evlog/target/release}"
readonly IMAGE="${IMAGE:-evlog:dev}"
readonly APP_UID=10001
DOCKERFILE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/Dockerfile"
readonly DOCKERFILE

die() { echo "build-image: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found"
command -v ldd >/dev/null || die "ldd not found"
[[ -x "$BIN_DIR/evlog-node" ]] || die "no executable $BIN_DIR/evlog-node (build it: cargo build --release)"

CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/evlog-image.XXXXXX")"
readonly CONTEXT
trap 'rm -rf -- "$CONTEXT"' EXIT
ROOT="$CONTEXT/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/var/lib/evlog"

# Copies a file (following symlinks) and checks the copy is identical: the binaries may
# be relinked by a concurrent cargo build while we copy.
copy_stable() {
    local src="$1" dst="$2" _
    for _ in 1 2 3 4 5; do
        cp -L -- "$src" "$dst" && cmp -s -- "$src" "$dst" && return 0
        sleep 2
    done
    die "$src keeps changing while being copied (a build in progress?)"
}

# Lists the absolute paths of the shared objects (and the loader) ldd gives for $1.
shared_objects() {
    local out
    if ! out="$(ldd "$1" 2>&1)"; then
        grep -q "not a dynamic executable" <<<"$out" && return 0
        die "ldd $1 failed: $out"
    fi
    if grep -q "not found" <<<"$out"; then
        die "ldd $1: missing libraries: $(grep "not found" <<<"$out" | tr -s ' \t' ' ')"
    fi
    # "libx.so => /path/libx.so (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
    # linux-vdso has no path and is provided by the kernel.
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

binaries=(evlog-node)
if [[ -x "$BIN_DIR/evlog" ]]; then
    binaries+=(evlog)
else
    echo "build-image: no $BIN_DIR/evlog, image gets evlog-node only" >&2
fi

declare -A libs=()
for bin in "${binaries[@]}"; do
    copy_stable "$BIN_DIR/$bin" "$ROOT/usr/local/bin/$bin"
    chmod 0755 "$ROOT/usr/local/bin/$bin"
    while IFS= read -r lib; do
        [[ -n "$lib" ]] && libs["$lib"]=1
    done < <(shared_objects "$BIN_DIR/$bin")
done
for lib in "${!libs[@]}"; do
    # Same path as on the host (the loader path is baked into the binary; the libraries
    # sit in the loader's default search directories), content of the symlink target.
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L -- "$lib" "$ROOT$lib"
    chmod 0755 "$ROOT$lib"
done

cat >"$ROOT/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
evlog:x:$APP_UID:$APP_UID:evlog:/var/lib/evlog:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$ROOT/etc/group" <<GROUP
root:x:0:
evlog:x:$APP_UID:
nogroup:x:65534:
GROUP
# glibc >= 2.34 has the files and dns NSS modules built in; this makes the order explicit.
printf 'hosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group" "$ROOT/etc/nsswitch.conf"
chmod 1777 "$ROOT/tmp"
chmod 0750 "$ROOT/var/lib/evlog"

# Owners are set in the tar, not on disk (no root or chown needed): root for everything,
# the app uid for its data directory. Fixed mtime and order: same inputs, same layer.
tar_opts=(--numeric-owner --sort=name --mtime=@0 --format=gnu -C "$ROOT")
tar --create --file="$CONTEXT/rootfs.tar" --owner=0 --group=0 \
    --exclude=./var/lib/evlog "${tar_opts[@]}" .
tar --append --file="$CONTEXT/rootfs.tar" --owner="$APP_UID" --group="$APP_UID" \
    "${tar_opts[@]}" ./var/lib/evlog
rm -rf -- "$ROOT"

version="$("$BIN_DIR/evlog-node" --version 2>/dev/null | awk '{print $2}')" || true
echo "build-image: ${binaries[*]} + ${#libs[@]} shared objects ->" \
    "$(du -h "$CONTEXT/rootfs.tar" | cut -f1) context" >&2

# BuildKit if the buildx plugin is installed, else the classic builder (both handle ADD
# of a local tar the same way).
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build --file "$DOCKERFILE" --tag "$IMAGE" \
    --build-arg "EVLOG_VERSION=${version:-unknown}" "$CONTEXT"
echo "build-image: built $IMAGE" >&2
