# netctl preflight: kill this run's agent, pid $PID, which did not end when netctl closed its
# stdin (stopped, or stuck). Only while that process's command line carries $TOKEN as a word of
# its own: a pid reused since is never killed. Prints `@@killed`, or `@@gone` when it is not
# (or no longer) the agent.
c=$(tr '\0' '\n' 2>/dev/null < "/proc/$PID/cmdline") || c=
case "
$c
" in
  *"
$TOKEN
"*)
    kill -KILL "$PID" && echo "@@killed" || echo "@@gone"
    ;;
  *) echo "@@gone" ;;
esac
