# netctl: switch $RUN is done with this node: its new state.json (the progress record moved to
# last_switch) replaces the old one atomically, then the switch's lock is released - one step, so
# no kill leaves a lock without a record.
tmp="$STATE.netctl-$RUN"
rm -f -- "$tmp"
if ! { printf '%s' "$CONTENT" | base64 -d > "$tmp" && chmod 0644 -- "$tmp" && mv -f -- "$tmp" "$STATE"; }; then
  rm -f -- "$tmp"
  exit 1
fi
if [ -f "$LOCK" ] && grep -qxF "run=$RUN" "$LOCK"; then rm -f -- "$LOCK"; fi
