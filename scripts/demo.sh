#!/usr/bin/env bash
# netctl's main job on one machine: a 3-node lab of real systemd + sshd nodes, then `netctl
# preflight`, `netctl init` (routes provider, host-gw) and `netctl verify`. Installs what is missing; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo.sh needs root (network namespaces, systemd-nspawn)" >&2; exit 2; }
PACKAGES=(openssh-server containernetworking-plugins iproute2 iputils-ping systemd-container debootstrap)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "==> building netctl"
cargo build --release --quiet
NETCTL=$PWD/target/release/netctl

echo "==> netctl lab up --name demo --nodes 3 (the first run builds and caches a Debian root, about a minute)"
"$NETCTL" lab down --name demo >/dev/null 2>&1 || true
PROFILE=$("$NETCTL" lab up --name demo --nodes 3 | tail -n 1)
echo "    profile: $PROFILE"

echo "==> netctl preflight -p $PROFILE   (what the network needs, on every node and between every pair, before any change)"
"$NETCTL" preflight -p "$PROFILE"

echo "==> netctl init -p $PROFILE --yes --no-verify   (runs preflight again first, over its own sessions)"
"$NETCTL" init -p "$PROFILE" --yes --no-verify

echo "==> netctl verify -p $PROFILE   (node checks, and pods made with the real CNI plugins pinging across nodes)"
"$NETCTL" verify -p "$PROFILE"

echo
echo "The lab is up. Try:"
echo "  $NETCTL plan -p $PROFILE           # nothing to change"
echo "  $NETCTL switch -p $PROFILE --networking routes --backend vxlan --yes   # live, node by node"
echo "  $NETCTL lab exec --name demo node-1 -- ip route"
echo "Tear it down with: $NETCTL lab down --name demo"
