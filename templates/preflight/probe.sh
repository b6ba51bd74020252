# netctl preflight: every probe in "$@" at once (templates/preflight/agent.py, in $AGENT), at
# most about 2 s whatever the peers do; one `@@probe PROBE ok MS|fail REASON` or `@@path ...`
# line per probe.
# Where this run's listener runs (its directory $DIR), it does the probes: a python start is
# most of a probe round's cost on a node, and the listener is a python with the agent loaded.
# Otherwise (host-gw starts no listener) a python of our own. The output is the same either
# way; when the listener is there but cannot answer, `@@note` says why before the fallback's.
# has_token is templates/preflight/token.sh's.

# Seconds the exchange with the listener takes at most: its probes take about 2 s, reading the
# routes up to 4 s more.
BOUND=8

direct() {
  if ! command -v python3 >/dev/null 2>&1; then
    echo "@@error python3 not found on the node"
    return
  fi
  # -B -I -S: no .pyc written, nothing taken from the environment, the user or site-packages.
  python3 -B -I -S -c "$AGENT" probe "$TOKEN" "$@" </dev/null || echo "@@error the agent exited with status $?"
}

# Why the listener cannot take the request (empty: it can). Its directory, FIFOs and pid file
# are root's alone (-O: owned by us, and probes run as root), and the pid is the listener's.
unusable() {
  if [ -L "$DIR" ] || ! [ -O "$DIR" ]; then
    echo "its directory is not root's alone"
    return
  fi
  for f in ctl out; do
    if ! [ -p "$DIR/$f" ] || [ -L "$DIR/$f" ] || ! [ -O "$DIR/$f" ]; then
      echo "it has no FIFO $f"
      return
    fi
  done
  pid=
  [ -f "$DIR/pid" ] && ! [ -L "$DIR/pid" ] && read -r pid < "$DIR/pid"
  case "$pid" in
    '' | *[!0-9]*) echo "its pid file is unreadable" ;;
    *)
      if ! has_token "$pid"; then
        echo "it is gone"
      elif ! command -v timeout >/dev/null 2>&1; then
        echo "timeout not found on the node"
      fi
      ;;
  esac
}

if [ -d "$DIR" ]; then
  why=$(unusable)
  if [ -z "$why" ]; then
    # The request into ctl, the answer out of out; both opens block until the other end is
    # there, so all of it is bounded. The answer ends with a line `end`: anything else (cut
    # short, timed out) is not used.
    # shellcheck disable=SC2016 # the inner script's own "$@", not ours
    ans=$(timeout "$BOUND" sh -c 'd=$1; shift; printf "%s\n" "$@" end > "$d/ctl" && cat "$d/out"' sh "$DIR" "$@" </dev/null) || ans=
    case "$ans" in
      end)
        exit 0
        ;;
      *"
end")
        printf '%s\n' "${ans%"
end"}"
        exit 0
        ;;
    esac
    why="no answer from it in $BOUND s"
  fi
  echo "@@note probes without this run's listener: $why"
fi
direct "$@"
