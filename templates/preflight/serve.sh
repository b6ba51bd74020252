# netctl preflight: the end of round 1's script. The agent (templates/preflight/agent.py, in
# $AGENT) takes over this channel: it binds the specs in "$@" (udp:PORT, tcp:PORT, ipip), prints
# `@@listen SPEC ok|busy|error MSG` for each and `@@ready`, then answers the other nodes' echoes
# carrying $TOKEN, and does this node's probes when netctl asks on stdin, until netctl closes
# stdin (or the connection goes) or $LIFETIME seconds pass. Nothing is written on the node.
if ! command -v python3 >/dev/null 2>&1; then
  echo "@@error python3 not found on the node"
  exit 0
fi
# -B -I -S: no .pyc written, nothing taken from the environment, the user or site-packages.
exec python3 -B -I -S -c "$AGENT" serve "$TOKEN" "$LIFETIME" "$@"
