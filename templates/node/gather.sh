# netctl gather: one read-only round trip. Prints, tagged, the state file ($STATE), the lock
# ($LOCK), the node transactions under $TXN_DIR without a result, then per argument:
#   file:PATH  its mode and base64 content (`@@path`, then `@@file MODE B64` or `@@file -`)
#   sum:PATH   its mode, size and sha256 only (binaries: their bytes are not sent back)
#   unit:NAME  `systemctl is-enabled` (only where the node runs systemd)
#   dir:DIR    every *.conf in DIR (a unit's drop-ins) as file: does. A name with any other
#              character than letters, digits, `.`, `_`, `-`, `@` is not printed (it could forge
#              lines); it is reported as DIR/$UNSAFE, which netctl refuses.
# Nothing it prints is run by a shell.
set -u
show() {
  if [ -f "$2" ]; then
    printf '@@%s %s ' "$1" "$(stat -c %a "$2")"; base64 -w0 < "$2"; echo
  else
    printf '@@%s -\n' "$1"
  fi
}
sum() {
  if [ -f "$1" ]; then
    printf '@@sum %s %s ' "$(stat -c %a "$1")" "$(stat -c %s "$1")"; sha256sum < "$1" | cut -d' ' -f1
  else
    printf '@@file -\n'
  fi
}
show state "$STATE"
show lock "$LOCK"
# A transaction is running when its pid's command line is its own txn.sh.
for t in "$TXN_DIR"/*/; do
  [ -f "$t/txn.sh" ] || continue
  [ -f "$t/result" ] && continue
  r=${t%/}; r=${r##*/}
  p=$(cat "$t/pid" 2>/dev/null)
  if [ -n "$p" ] && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$TXN_DIR/$r/txn.sh"; then s=running; else s=interrupted; fi
  printf '@@txn %s %s\n' "$s" "$r"
done
systemd=
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemd=1; fi
for a in "$@"; do
  v=${a#*:}
  case $a in
    file:*) printf '@@path %s\n' "$v"; show file "$v" ;;
    sum:*) printf '@@path %s\n' "$v"; sum "$v" ;;
    unit:*)
      if [ -n "$systemd" ]; then
        printf '@@unit %s %s\n' "$v" "$(systemctl is-enabled "$v" 2>/dev/null || true)"
      fi ;;
    dir:*)
      [ -d "$v" ] || continue
      for f in "$v"/*.conf; do
        [ -e "$f" ] || continue
        n=${f##*/}
        case $n in
          .*|*[!A-Za-z0-9._@-]*) printf '@@path %s/%s\n' "$v" "$UNSAFE"; printf '@@file -\n' ;;
          *) printf '@@path %s\n' "$f"; show file "$f" ;;
        esac
      done ;;
  esac
done
true
