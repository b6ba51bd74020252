# netctl: remove test pods a killed run left on the node (SIGKILL skips verify's teardown): every
# namespace named like verify's pods (their veths go with them), host-local's reservations for
# them, then any bridge named in a CNI config under $CONF that has nothing attached (the first
# test pod's ADD may have created it; the plugin makes it again on the next ADD). Bridge names
# are read from the configs, so they are checked as cni::check_ifname does (charset, length, not
# `.`, `..` or `-x`), and only bridges are deleted.
for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
  case "$ns" in netctl-*-a|netctl-*-b) ip netns del "$ns" ;; esac
done
for f in /var/lib/cni/networks/*/*; do
  [ -f "$f" ] || continue
  case "$(head -n1 "$f")" in netctl-*-a*|netctl-*-b*) rm -f "$f" ;; esac
done
cat "$CONF"/*.conf "$CONF"/*.conflist 2>/dev/null | sed -n 's/.*"bridge" *: *"\([A-Za-z0-9_.-]*\)".*/\1/p' | sort -u |
while read -r b; do
  case "$b" in ''|-*|.|..|????????????????*) continue ;; esac
  del_empty_bridge "$b"
done
