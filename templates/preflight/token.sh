# netctl preflight: has_token PID, true while process PID's command line carries $TOKEN as a word
# of its own (this run's listener), so a stale pid file never names another process as it.
has_token() {
  c=$(tr '\0' '\n' 2>/dev/null < "/proc/$1/cmdline") || return 1
  case "
$c
" in *"
$TOKEN
"*) return 0 ;; esac
  return 1
}

# ending PID: true while process PID is ending: its command line is gone (a process frees its
# memory before it ends, and reads as having none meanwhile) but it is neither reaped nor a
# zombie. A listener that holds much memory is a while at it.
ending() {
  [ -z "$(tr -d '\0' 2>/dev/null < "/proc/$1/cmdline")" ] || return 1
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}
