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
