# Putting files back from a run's backups: the one definition, used by the node transaction's
# undo (txn.sh) and by switch's rollback (roll-back.sh). Needs RUN (the run id) and BACKUPS (that
# run's backup directory, where each file's copy sits under its own path).

# Paths are absolute and normal (netctl checks them), so the parent is the text before the last /;
# parameter expansion instead of dirname keeps the per-file cost to the processes that do work.
parent() { p=${1%/*}; printf '%s' "${p:-/}"; }
tmp_of() { printf '%s/.netctl-%s.%s' "$(parent "$2")" "$RUN" "$1"; }

# place FILE PATH: put FILE (a copy) at PATH atomically: a temp file beside it, then rename(2).
place() {
  t=$(tmp_of undo "$2")
  if rm -f -- "$t" && cp -a -- "$1" "$t" && mv -fT -- "$t" "$2"; then return 0; fi
  rm -f -- "$t"
  return 1
}

# put_back existed|absent PATH: a file that existed before the run gets its backup copy back; one
# that did not is removed.
put_back() {
  case $1 in
    existed) place "$BACKUPS$2" "$2" ;;
    absent) rm -f -- "$2" ;;
    *) echo "put_back: unknown kind $1" >&2; return 1 ;;
  esac
}
