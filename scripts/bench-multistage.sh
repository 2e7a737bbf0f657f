#!/usr/bin/env bash
# Parallel stages, measured: the `multistage` bench context (four independent
# stages of ~2 s CPU each, then a final stage copying from all four) built
# cold on all cores, against the sum of the four stages' RUN times measured
# in a build pinned to one core (where the stages cannot overlap).
# Prints the medians of N runs and the ratio (target: <= 0.60).
# Needs ../shared/bench/peers/setup.sh to have made $PEERS_STATE/base/busybox.
# Usage: scripts/bench-multistage.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
state=${PEERS_STATE:-/tmp/peers}
base="$state/base/busybox"
[ -f "$base/index.json" ] || { echo "no $base: run ../shared/bench/peers/setup.sh" >&2; exit 1; }
cargo build --release -q -p strata
strata=$PWD/target/release/strata
ctx=../shared/bench/contexts/multistage
root=$(mktemp -d /tmp/strata-bench-ms.XXXXXX)
trap 'rm -rf "$root"' EXIT
build() { # build [taskset args...]: a cold build; prints its log
  rm -rf "$root/state"
  STRATA_ROOT=$root/state "$@" "$strata" build --progress=plain --network=none \
    --build-context "127.0.0.1:5000/busybox:latest=oci-layout://$base:latest" "$ctx" 2>&1
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
sums=() walls=()
for i in $(seq 1 "$runs"); do
  # One core: the four stage RUNs (`[alpha 2/2] RUN ...` etc.) one after another.
  log=$(build taskset -c 0)
  sum=$(awk '/^#[0-9]+ \[(alpha|beta|gamma|delta) 2\/2\] RUN/ {id[$1]=1} $2 == "DONE" && ($1 in id) {s += $3+0} END {printf "%.2f", s}' <<<"$log")
  t0=$(date +%s%N)
  build >/dev/null
  t1=$(date +%s%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b-a)/1e9}')
  echo "run $i: four stages one at a time ${sum}s, whole build on $(nproc) cores ${wall}s"
  sums+=("$sum") walls+=("$wall")
done
s=$(printf '%s\n' "${sums[@]}" | median)
w=$(printf '%s\n' "${walls[@]}" | median)
echo "median: stages summed ${s}s, parallel build ${w}s, ratio $(awk -v w="$w" -v s="$s" 'BEGIN {printf "%.2f", w/s}') (target <= 0.60)"
