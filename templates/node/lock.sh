# netctl lock: take the node lock $LOCK for run $RUN. Exits 75 with the holder's file on stderr
# when another run holds it; prints $REENTERED (and changes nothing) when this run does already.
# The file is created with noclobber (set -C): taking it is atomic.
mkdir -p "$LOCK_DIR" && chmod 0755 "$LOCK_DIR"
if [ -f "$LOCK" ] && grep -qxF "run=$RUN" "$LOCK"; then
  echo "$REENTERED"
elif ! ( set -C; { printf '%s' "$LINES"; printf 'since=%s\n' "$(date -u +%FT%TZ)"; } > "$LOCK" ) 2>/dev/null; then
  cat "$LOCK" >&2
  exit 75
fi
