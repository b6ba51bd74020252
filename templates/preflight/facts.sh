# netctl preflight: one read-only script prints, tagged, what the node checks need. Nothing it
# prints is run or used as a path. Names it finds (interfaces, files) that hold anything but
# [A-Za-z0-9._@/-] are left out, so no line can forge another. Few processes: it runs on every
# node of a large cluster at once.
# Variables: BIN (cniBinDir), CONTAINERD (its config), KEYS (the sysctls whose persisted settings
# matter, as an extended regex: `net[./]ipv4[./]ip_forward|...`).
# Arguments: mod:NAME:PRESENT (a module and the path that shows it is there), peer:ADDRESS (the
# route to a peer is wanted).
set -u
safe() { case $1 in ''|*[!A-Za-z0-9._@/-]*) return 1 ;; esac; }
# The node's clock first: netctl brackets this round trip with its own.
printf '@@clock %s\n' "$(date +%s.%N)"
# Addresses (in the kernel's order), links and the default route from one `ip`.
ip -o -4 -batch - 2>/dev/null <<'IP' | while read -r i d a b c e _ g _; do
addr show
link show
route show default
IP
  if [ "$i" = default ]; then
    # default via GW dev DEV
    [ "$b" = dev ] && safe "$c" && printf '@@default %s %s\n' "$c" "$a"
  elif [ "$a" = inet ]; then
    # N: DEV inet ADDR/LEN [brd X] scope SCOPE
    scope=$e; [ "$c" = brd ] && scope=$g
    d=${d%%@*}; safe "$d" && printf '@@addr %s %s %s %s\n' "${i%:}" "$d" "$b" "$scope"
  elif [ "$b" = mtu ]; then
    # N: DEV: <FLAGS> mtu MTU
    d=${d%:}; d=${d%%@*}; safe "$d" && printf '@@link %s %s\n' "$d" "$c"
  fi
done
# Every value from /proc in one grep (dash's `read` takes /proc files one byte at a time and
# gets only the first).
grep -H . /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/ip_forward \
  /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null |
  while IFS=: read -r f v; do
    case $v in ''|*[!0-9]*) continue ;; esac
    case $f in
      */rp_filter) d=${f%/rp_filter}; d=${d##*/}; safe "$d" && printf '@@rp %s %s\n' "$d" "$v" ;;
      */ip_forward) printf '@@forward %s\n' "$v" ;;
      */nf_conntrack_count) printf '@@ctcount %s\n' "$v" ;;
      */nf_conntrack_max) printf '@@ctmax %s\n' "$v" ;;
    esac
  done
for f in "$BIN"/*; do [ -f "$f" ] && [ -x "$f" ] && safe "${f##*/}" && printf '@@bin %s\n' "${f##*/}"; done
[ -f "$CONTAINERD" ] && { printf '@@containerd '; base64 -w0 < "$CONTAINERD"; echo; }
if command -v python3 >/dev/null 2>&1; then echo '@@python 1'; else echo '@@python 0'; fi
kernel=
# Every modprobe.d and sysctl.d file, in the order their readers take them (a name in an earlier
# directory hides the same name in a later one: netctl judges that, the script only lists).
confs='' sysctls=''
for d in /etc/modprobe.d /run/modprobe.d /usr/local/lib/modprobe.d /usr/lib/modprobe.d /lib/modprobe.d; do
  for f in "$d"/*.conf; do [ -f "$f" ] && safe "$f" && confs="$confs $f"; done
done
for d in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do
  for f in "$d"/*.conf; do [ -f "$f" ] && safe "$f" && sysctls="$sysctls $f"; done
done
[ -f /etc/sysctl.conf ] && sysctls="$sysctls /etc/sysctl.conf"
mods=''
for a in "$@"; do
  case $a in
    mod:*)
      m=${a#mod:}; present=${m#*:}; m=${m%%:*}; mods="$mods|$m"
      [ -n "$kernel" ] || [ -e "$present" ] || kernel=$(uname -r)
      if [ -e "$present" ]; then s=loaded
      elif grep -qE "/$m\.ko(\.[a-z]+)?\$" "/lib/modules/$kernel/modules.builtin" 2>/dev/null; then s=builtin
      elif grep -qE "(^|/)$m\.ko(\.[a-z]+)?:" "/lib/modules/$kernel/modules.dep" 2>/dev/null; then s=available
      # A container shows neither /sys/module nor /lib/modules: make a device of the module's
      # kind in a network namespace of its own, gone with the command.
      elif [ "$m" = vxlan ] && unshare -n ip link add pf0 type vxlan id 1 dstport 4789 >/dev/null 2>&1; then s=works
      elif [ "$m" = wireguard ] && unshare -n ip link add pf0 type wireguard >/dev/null 2>&1; then s=works
      elif [ "$m" = ipip ] && unshare -n ip link add pf0 type ipip >/dev/null 2>&1; then s=works
      else s=missing; fi
      printf '@@mod %s %s\n' "$m" "$s" ;;
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
# `install NAME CMD` replaces loading a module (hardening guides set it to /bin/false): one grep
# over every file for every module.
if [ -n "$mods" ] && [ -n "$confs" ]; then
  # shellcheck disable=SC2086 # the file list, split on purpose (names checked by safe)
  grep -HE "^[[:space:]]*install[[:space:]]+(${mods#|})[[:space:]]" $confs 2>/dev/null | while IFS=: read -r f line; do
    set -f
    # shellcheck disable=SC2086 # the line's words
    set -- $line
    set +f
    [ $# -ge 3 ] && safe "${3##*/}" && printf '@@modinstall %s %s %s\n' "$2" "$f" "${3##*/}"
  done
fi
# The settings of netctl's sysctls in every file, in file order: one grep.
if [ -n "$KEYS" ] && [ -n "$sysctls" ]; then
  # shellcheck disable=SC2086 # the file list, split on purpose (names checked by safe)
  grep -HE "^[[:space:]]*-?($KEYS)[[:space:]]*=" $sysctls 2>/dev/null | while IFS=: read -r f line; do
    k=${line%%=*}; v=${line#*=}
    k=$(printf '%s' "$k" | tr -d ' \t' | tr / .); k=${k#-}; v=$(printf '%s' "$v" | tr -d ' \t\r')
    case $v in ''|*[!0-9-]*) continue ;; esac
    safe "$k" && printf '@@sysctl %s %s %s\n' "$k" "$f" "$v"
  done
fi
echo '@@done'
