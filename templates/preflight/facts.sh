# netctl preflight: one read-only script prints, tagged, what the node checks need. Nothing it
# prints is run or used as a path. Names it finds (interfaces, files) that hold anything but
# [A-Za-z0-9._@-] are left out, so no line can forge another.
# Variables: BIN (cniBinDir), CONTAINERD (its config), ADDR (the profile's address).
# Arguments: mod:NAME:PRESENT (a module and the path that shows it is there), key:SYSCTL (a
# sysctl whose persisted settings matter), peer:ADDRESS (the route to a peer is wanted).
set -u
safe() { case $1 in ''|*[!A-Za-z0-9._@-]*) return 1 ;; esac; }
# The node's clock first: netctl brackets this round trip with its own.
printf '@@clock %s\n' "$(date +%s.%N)"
ip -o -4 addr show | while read -r i d _ a _ scope _; do
  d=${d%%@*}; safe "$d" && printf '@@addr %s %s %s %s\n' "${i%:}" "$d" "$a" "$scope"
done
ip -o link show | while read -r _ d _ _ mtu _; do
  d=${d%:}; d=${d%%@*}; safe "$d" && printf '@@link %s %s\n' "$d" "$mtu"
done
ip -4 route show default 2>/dev/null | while read -r _ via gw dev d _; do
  [ "$via" = via ] && [ "$dev" = dev ] && safe "$d" && printf '@@default %s %s\n' "$d" "$gw"
done
for f in /proc/sys/net/ipv4/conf/*/rp_filter; do
  d=${f%/rp_filter}; d=${d##*/}; safe "$d" && printf '@@rp %s %s\n' "$d" "$(cat "$f" 2>/dev/null || echo -)"
done
printf '@@forward %s\n' "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo -)"
printf '@@conntrack %s %s\n' "$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo -)" \
  "$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo -)"
for f in "$BIN"/*; do [ -f "$f" ] && [ -x "$f" ] && safe "${f##*/}" && printf '@@bin %s\n' "${f##*/}"; done
[ -f "$CONTAINERD" ] && { printf '@@containerd '; base64 -w0 < "$CONTAINERD"; echo; }
if command -v python3 >/dev/null 2>&1; then echo '@@python 1'; else echo '@@python 0'; fi
kernel=$(uname -r)
# modprobe.d in the order modprobe reads it: a file in /etc hides one of the same name below.
confs=$(for d in /etc/modprobe.d /run/modprobe.d /usr/local/lib/modprobe.d /usr/lib/modprobe.d /lib/modprobe.d; do
  for f in "$d"/*.conf; do [ -f "$f" ] && safe "${f##*/}" && printf '%s\n' "$f"; done; done)
sysctls=$(for d in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do
  for f in "$d"/*.conf; do [ -f "$f" ] && safe "${f##*/}" && printf '%s\n' "$f"; done; done)
for a in "$@"; do
  case $a in
    mod:*)
      m=${a#mod:}; present=${m#*:}; m=${m%%:*}
      if [ -e "$present" ]; then s=loaded
      elif grep -qE "/$m\.ko(\.[a-z]+)?\$" "/lib/modules/$kernel/modules.builtin" 2>/dev/null; then s=builtin
      elif grep -qE "(^|/)$m\.ko(\.[a-z]+)?:" "/lib/modules/$kernel/modules.dep" 2>/dev/null; then s=available
      # A container shows neither /sys/module nor /lib/modules: make a device of the module's
      # kind in a network namespace of its own, gone with the command.
      elif [ "$m" = vxlan ] && unshare -n ip link add pf0 type vxlan id 1 dstport 4789 >/dev/null 2>&1; then s=works
      elif [ "$m" = wireguard ] && unshare -n ip link add pf0 type wireguard >/dev/null 2>&1; then s=works
      elif [ "$m" = ipip ] && unshare -n ip link add pf0 type ipip >/dev/null 2>&1; then s=works
      else s=missing; fi
      printf '@@mod %s %s\n' "$m" "$s"
      # `install NAME CMD` replaces loading; hardening guides set it to /bin/false or /bin/true.
      printf '%s\n' "$confs" | while read -r f; do
        [ -n "$f" ] || continue
        sed -n "s/^[[:space:]]*install[[:space:]][[:space:]]*${m}[[:space:]][[:space:]]*\\([^[:space:]]*\\).*/\\1/p" "$f" 2>/dev/null | head -n1 | while read -r cmd; do
          safe "${cmd##*/}" && printf '@@modinstall %s %s %s\n' "$m" "$f" "${cmd##*/}"
        done
      done ;;
    key:*)
      k=${a#key:}; kre=$(printf '%s' "$k" | sed 's/[.]/[.\/]/g')
      { printf '%s\n' "$sysctls"; [ -f /etc/sysctl.conf ] && echo /etc/sysctl.conf; } | while read -r f; do
        [ -n "$f" ] || continue
        sed -n "s/^[[:space:]]*-\\{0,1\\}${kre}[[:space:]]*=[[:space:]]*\\([0-9-][0-9]*\\)[[:space:]]*\$/\\1/p" "$f" 2>/dev/null | tail -n1 | while read -r v; do
          printf '@@sysctl %s %s %s\n' "$k" "$f" "$v"
        done
      done ;;
    peer:*)
      p=${a#peer:}
      # shellcheck disable=SC2046 # the route's words, split on purpose
      set -- $(ip -o -4 route get "$p" 2>/dev/null | head -n1)
      dev=- src=- via=-
      while [ $# -gt 1 ]; do
        case $1 in dev) safe "$2" && dev=$2 ;; src) src=$2 ;; via) via=$2 ;; esac
        shift
      done
      case $src in *[!0-9.]*) src=- ;; esac
      case $via in *[!0-9.]*) via=- ;; esac
      printf '@@routeget %s %s %s %s\n' "$p" "$dev" "$src" "$via" ;;
  esac
done
echo '@@done'
