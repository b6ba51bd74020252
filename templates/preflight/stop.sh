# netctl preflight: stop this run's listener and remove its directory $DIR. The pid in $DIR/pid
# is killed only while that process's command line carries $TOKEN as a word of its own, so a
# stale pid never kills another process. Prints `@@stopped`, or `@@left WHAT` for each thing
# still there. Idempotent: a second stop finds nothing and says `@@stopped`. has_token and ending
# are templates/preflight/token.sh's.
pid=
if [ -d "$DIR" ] && [ ! -L "$DIR" ] && [ -f "$DIR/pid" ]; then
  read -r pid < "$DIR/pid" || pid=
fi
case "$pid" in '' | *[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && has_token "$pid"; then
  kill -TERM "$pid" 2>/dev/null
  i=0
  while [ "$i" -lt 10 ] && has_token "$pid"; do sleep 0.1; i=$((i + 1)); done
  if has_token "$pid"; then kill -KILL "$pid" 2>/dev/null; sleep 0.1; fi
  # Its command line went before it ended: the stop returns when it has ended (up to 5 s).
  i=0
  while [ "$i" -lt 50 ] && ending "$pid"; do sleep 0.1; i=$((i + 1)); done
fi
if [ -d "$DIR" ] && [ ! -L "$DIR" ]; then
  made=
  [ -e "$DIR/made-parent" ] && made=1
  rm -f "$DIR/pid" "$DIR/made-parent" "$DIR/ctl" "$DIR/out"
  # The directory of runs, and /run/netctl when this run's listen made it, go when empty.
  rmdir "$DIR" 2>/dev/null && rmdir "${DIR%/*}" 2>/dev/null && [ -n "$made" ] && rmdir "${DIR%/*/*}" 2>/dev/null
fi
left=
# Only this node's listener, by its pid: on a machine whose nodes share one pid namespace (the
# lab's), another node's listener of the same run carries the same token.
if [ -n "$pid" ] && has_token "$pid"; then
  echo "@@left process $pid"
  left=1
fi
if [ -e "$DIR" ] || [ -L "$DIR" ]; then
  echo "@@left $DIR"
  left=1
fi
[ -n "$left" ] || echo "@@stopped"
