# netctl preflight: start this run's listener (templates/preflight/agent.py, in $AGENT) for the
# specs in "$@" (udp:PORT, tcp:PORT, ipip). It binds every spec before it detaches, prints
# `@@listen SPEC ok|busy|error MSG` and returns; the listener then answers probes carrying
# $TOKEN until $LIFETIME seconds pass, stop.sh removes its directory, or SIGTERM.
if ! command -v python3 >/dev/null 2>&1; then
  echo "@@error python3 not found on the node"
  exit 0
fi
# -B -I -S: no .pyc written, nothing taken from the environment, the user or site-packages.
python3 -B -I -S -c "$AGENT" listen "$TOKEN" "$LIFETIME" "$@" </dev/null || echo "@@error the agent exited with status $?"
