#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root: installs what the
# tests need, then runs the format check, clippy and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in busybox:busybox-static crun:crun runc:runc umoci:umoci skopeo:skopeo \
  docker-registry:docker-registry zstd:zstd bzip2:bzip2 xz:xz-utils setcap:libcap2-bin \
  unshare:util-linux losetup:mount blockdev:util-linux keyctl:keyutils gcc:gcc \
  /usr/bin/time:time slirp4netns:slirp4netns ip:iproute2 ssh-agent:openssh-client \
  newuidmap:uidmap setpriv:util-linux useradd:passwd tmux:tmux; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v cargo-machete >/dev/null 2>&1 || cargo install --locked cargo-machete

# No crate lists a dependency it does not use.
cargo machete

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
