# cursors ROOT: every host-local allocation cursor of the networks under ROOT, as
# `@@cursor PATH MTIME CONTENT`, so verify can put them back after its test pods. A path with a
# newline is skipped: it would print lines of its own choosing into the output; a symlink is
# skipped: restoring it would write through it.
cursors() {
  for f in "$1"/*/last_reserved_ip.*; do
    case "$f" in *'
'*) continue ;; esac
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      printf '@@cursor %s %s %s\n' "$f" "$(stat -c %.9Y "$f")" "$(head -c 64 "$f")"
    fi
  done
}
