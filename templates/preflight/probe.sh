# netctl preflight: every probe in "$@" at once (templates/preflight/agent.py, in $AGENT), at
# most about 2 s whatever the peers do; one `@@probe PROBE ok MS|fail REASON` or `@@path ...`
# line per probe.
if ! command -v python3 >/dev/null 2>&1; then
  echo "@@error python3 not found on the node"
  exit 0
fi
# -B -I -S: no .pyc written, nothing taken from the environment, the user or site-packages.
python3 -B -I -S -c "$AGENT" probe "$TOKEN" "$@" </dev/null || echo "@@error the agent exited with status $?"
