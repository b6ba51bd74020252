# netctl verify: remove what the test pods left on the node, in the order of the arguments:
#   neigh IP              the node's neighbour entry for a pod address (host-local hands the
#                         address out again, with a new MAC, once its cursor is back)
#   bridge NAME           the bridge the pods' config created, if nothing is attached to it
#   rmrf DIR              host-local's network directory the pods created
#   cursors DIR           host-local's cursors in DIR: the ones the pods created go ...
#   cursor PATH MTIME IP  ... and the others get their content and mtime back
#   rmdir DIR             a directory host-local created, if empty
#   forward-off           ip_forward back to 0 (the bridge plugin turned it on)
# The exit status is the last step's.
rc=0
while [ $# -gt 0 ]; do
  case $1 in
    neigh) ip neigh flush to "$2" 2>/dev/null || true; rc=$?; shift 2 ;;
    bridge) del_empty_bridge "$2"; rc=$?; shift 2 ;;
    rmrf) rm -rf "$2"; rc=$?; shift 2 ;;
    cursors) rm -f "$2"/last_reserved_ip.*; rc=$?; shift 2 ;;
    cursor) printf '%s' "$4" > "$2" && touch -d "@$3" "$2"; rc=$?; shift 4 ;;
    rmdir) rmdir "$2" 2>/dev/null || true; rc=$?; shift 2 ;;
    forward-off) sysctl -q -w net.ipv4.ip_forward=0; rc=$?; shift ;;
    *) echo "pods-left: unknown step $1" >&2; exit 2 ;;
  esac
done
exit $rc
