# del_empty_bridge NAME: delete device NAME only if it is a bridge with nothing attached. The name
# comes from a CNI config on the node, so it must not take down the uplink or a VXLAN device that
# a config happens to name.
del_empty_bridge() {
  if ip -d -o link show dev "$1" 2>/dev/null | grep -q ' bridge ' && [ -z "$(ip -o link show master "$1" 2>/dev/null)" ]; then
    ip link del dev "$1"
  fi
}
