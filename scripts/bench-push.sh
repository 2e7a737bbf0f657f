#!/usr/bin/env bash
# Push speed: `strata push` of a ~300 MB image (one incompressible layer) to
# a loopback docker-registry vs `skopeo copy` of the same image (OCI layout →
# docker://), medians of 3 runs (a fresh registry for each), then a second
# `strata push` with every blob already present.
#   scripts/bench-push.sh [SIZE_MB]   (needs docker-registry and skopeo)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-300}
runs=3

for bin in docker-registry skopeo; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install $bin" >&2; exit 3; }
done
cargo build --release -p strata -q
strata=$PWD/target/release/strata

work=$(mktemp -d)
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export STRATA_ROOT=$work/root DOCKER_CONFIG=$work/docker

# The image: FROM scratch plus one layer of random bytes, stored uncompressed
# so neither tool spends the time on compression.
mkdir -p "$work/ctx"
head -c "${size_mb}M" /dev/urandom >"$work/ctx/big"
printf 'FROM scratch\nCOPY big /big\n' >"$work/ctx/Dockerfile"
"$strata" build -q --compression uncompressed -t bench:1 "$work/ctx" >/dev/null
"$strata" save -o "$work/bench.tar" bench:1
mkdir -p "$work/layout"
tar -xf "$work/bench.tar" -C "$work/layout"

port=
start_registry() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
  rm -rf "$work/storage"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
  reg_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "docker-registry did not start on 127.0.0.1:$port" >&2
  exit 3
}

seconds() { # seconds CMD...: wall time of CMD
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" >"$work/last.log" 2>&1; then
    echo "failed: $*" >&2
    cat "$work/last.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

strata_t=() skopeo_t=() again_t=()
for i in $(seq "$runs"); do
  start_registry
  host=127.0.0.1:$port
  "$strata" tag bench:1 "$host/strata:$i"
  t=$(seconds "$strata" push "$host/strata:$i") && strata_t+=("$t")
  t=$(seconds skopeo copy --dest-tls-verify=false "oci:$work/layout:1" "docker://$host/skopeo:$i") && skopeo_t+=("$t")
  t=$(seconds "$strata" push "$host/strata:$i") && again_t+=("$t")
  grep -q "uploaded 0, mounted 0, skipped 2" "$work/last.log" ||
    { echo "the second push transferred blobs:" >&2; cat "$work/last.log" >&2; exit 1; }
done

printf '%-34s %10s   %s\n' "push of a ${size_mb} MB image" "median s" "runs"
printf '%-34s %10.3f   %s\n' "strata push" "$(median "${strata_t[@]}")" "${strata_t[*]}"
printf '%-34s %10.3f   %s\n' "skopeo copy oci: -> docker://" "$(median "${skopeo_t[@]}")" "${skopeo_t[*]}"
printf '%-34s %10.3f   %s\n' "strata push again (all present)" "$(median "${again_t[@]}")" "${again_t[*]}"
