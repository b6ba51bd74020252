#!/usr/bin/env bash
# Every check netctl has: installs what the tests use (as root, Debian), then format, lint and
# every test, lab end-to-end tests included (they need root; under CI=true they fail, never skip).
set -euo pipefail
cd "$(dirname "$0")/.."
# A CI run builds once from a clean clone: incremental compilation's bookkeeping is only cost there.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi

PACKAGES=(openssh-server openssh-client containernetworking-plugins iproute2 iputils-ping iptables
          containerd runc busybox-static
          systemd systemd-container debootstrap kmod procps openssl tmux sudo bsdutils
          shellcheck nftables)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    # kubectl runs the kustomize tests; Debian's kubernetes-client provides one where none is installed.
    command -v kubectl >/dev/null || missing+=(kubernetes-client)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    echo "==> not root: lab end-to-end tests will say why they skip (under CI=true they fail)"
fi

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast --failure-output final
else
    cargo test --no-fail-fast
fi
