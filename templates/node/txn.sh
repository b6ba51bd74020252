#!/bin/sh
# netctl's node transaction: one run's whole change to this node, staged by netctl in the directory
# that holds this file (root's own, mode 0700). `run RUN` applies it step by step, journalling how
# to undo each step before taking it; if a step fails it undoes every journalled step, newest first,
# and exits 1 (2 if the undo itself failed). `undo RUN` puts back a transaction that never finished
# (the node rebooted, or the process was killed): the next netctl run calls it. Either way it writes
# `result` and releases the run's node lock (only if that run still holds it). netctl starts it
# detached from the SSH session (setsid, output to `log`), so a dropped connection or a killed
# netctl does not stop it halfway.
#
# Staged beside it: ops (one step per line, "VERB ARGS", a path always last), files/N (the Nth
# written file), cmds/N (provider commands), undo-pre/N (run before files are restored: the new
# provider's teardown, when the node had no earlier state), undo-post/N (run after: the commands of
# the state before this run), owner (optional: the run whose lock and backups these are). Written
# here: pid, journal, result.
set -u
T=$(CDPATH='' cd -- "${0%/*}" && pwd) || exit 2
RUN=${2:?run id}
# The run that owns the node while this transaction runs: its lock stays and its backups are
# these (a switch's node step is one transaction of the switch run, which holds the node until
# its last wave). Without an owner file, the transaction's own run.
OWNER=$RUN
if [ -f "$T/owner" ]; then OWNER=$(cat -- "$T/owner"); fi
LOCK={{ lock }}
BACKUPS={{ backups }}/$OWNER
ORIGINALS={{ originals }}
JOURNAL=$T/journal
STEP=

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
note() { printf '%s\n' "$*" >> "$JOURNAL"; }
{% include "node/restore.sh" %}
need_dir() { [ -d "$1" ] || mkdir -p -- "$1"; }

# save PATH: back it up (once per run: the first copy, the state before this run, wins) and
# journal how to undo a change to it.
save() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    if [ ! -e "$BACKUPS$1" ] && [ ! -L "$BACKUPS$1" ]; then
      need_dir "$(parent "$BACKUPS$1")" && cp -a -- "$1" "$BACKUPS$1" || return 1
    fi
    note "existed $1"
  else
    note "absent $1"
  fi
}

# Every written file is staged beside its target first (exclusive create, mode, fsync), so
# the renames that follow are the only steps that change what programs read.
prepare() {
  set --
  while IFS= read -r line <&3; do
    case $line in write\ *) ;; *) continue ;; esac
    rest=${line#write }; n=${rest%% *}; rest=${rest#* }; mode=${rest%% *}; path=${rest#* }
    if [ -d "$path" ] && [ ! -L "$path" ]; then echo "$path is a directory" >&2; return 1; fi
    d=$(parent "$path"); need_dir "$d" || return 1
    t=$d/.netctl-$RUN.$n
    if [ -e "$t" ] || [ -L "$t" ]; then rm -f -- "$t" || return 1; fi
    ( set -C; cat -- "$T/files/$n" > "$t" ) && chmod "$mode" -- "$t" || return 1
    set -- "$@" "$t"
  done 3< "$T/ops"
  # fsync(2) of exactly these files: a bare `sync` would flush every dirty page of the machine.
  [ $# -eq 0 ] || sync -- "$@"
}

# Remove staged temp files not renamed into place (after a failure; none are left after success).
discard() {
  while IFS= read -r line <&3; do
    case $line in write\ *) ;; *) continue ;; esac
    rest=${line#write }; n=${rest%% *}; rest=${rest#* }; path=${rest#* }
    rm -f -- "$(tmp_of "$n" "$path")" 2>/dev/null
  done 3< "$T/ops"
}

op() {
  verb=${1%% *}; rest=${1#* }
  case $verb in
    keep) # keep PATH: the original of a file netctl takes over, for reset
      if [ ! -e "$ORIGINALS$rest" ] && [ -e "$rest" ]; then
        note "kept $rest"
        need_dir "$(parent "$ORIGINALS$rest")" && cp -a -- "$rest" "$ORIGINALS$rest"
      fi ;;
    write) # write N MODE PATH
      n=${rest%% *}; rest=${rest#* }; path=${rest#* }
      save "$path" && mv -fT -- "$(tmp_of "$n" "$path")" "$path" ;;
    remove) save "$rest" && rm -f -- "$rest" ;;
    restore) # restore PATH: the pre-netctl original back in place (purged after commit)
      save "$rest" && place "$ORIGINALS$rest" "$rest" ;;
    reload) has_systemd || return 0; note "reloaded"; systemctl daemon-reload ;;
    enable)
      has_systemd || return 0
      systemctl is-enabled --quiet "$rest" 2>/dev/null && return 0
      note "enabled $rest"; systemctl enable --quiet "$rest" ;;
    disable)
      has_systemd || return 0
      systemctl is-enabled --quiet "$rest" 2>/dev/null && note "disabled $rest"
      systemctl is-active --quiet "$rest" 2>/dev/null && note "stopped $rest"
      systemctl disable --now --quiet "$rest" 2>/dev/null || true ;;
    stop)
      has_systemd || return 0
      systemctl is-active --quiet "$rest" 2>/dev/null && note "stopped $rest"
      systemctl stop "$rest" 2>/dev/null || true ;;
    start) has_systemd || return 0; systemctl start "$rest" ;;
    restart) has_systemd || return 0; note "restarted $rest"; systemctl restart "$rest" ;;
    run) # run N TITLE
      n=${rest%% *}; note "ran $n"; sh "$T/cmds/$n" < /dev/null ;;
    commit) note "committed" ;;
    # After the commit: tidying that cannot make the change wrong, so failures are only logged.
    purge) rm -f -- "$ORIGINALS$rest" || true ;;
    tidy) find "$rest" -depth -type d -empty -delete 2>/dev/null || true ;;
    *) echo "unknown step: $1" >&2; return 1 ;;
  esac
}

# Undo the journal, newest first; then reload units, re-apply the previous commands and bring
# back the units this run stopped or restarted.
undo() {
  [ -f "$JOURNAL" ] || return 0
  grep -qx committed "$JOURNAL" && return 0
  ok=0; reload=; ran=; units=
  for f in "$T"/undo-pre/*; do
    [ -f "$f" ] || continue
    grep -q '^ran ' "$JOURNAL" && { sh "$f" < /dev/null || ok=1; }
  done
  tac "$JOURNAL" > "$T/journal.rev"
  while IFS= read -r line <&3; do
    kind=${line%% *}; rest=${line#* }
    case $kind in
      existed|absent) put_back "$kind" "$rest" || ok=1
                      case $rest in /etc/systemd/system/*) reload=1 ;; esac ;;
      kept) rm -f -- "$ORIGINALS$rest" ;;
      reloaded) reload=1 ;;
      enabled) has_systemd && { systemctl disable --quiet "$rest" || ok=1; } ;;
      disabled) has_systemd && { systemctl enable --quiet "$rest" || ok=1; } ;;
      stopped|restarted) units="$rest $units" ;;
      ran) ran=1 ;;
    esac
  done 3< "$T/journal.rev"
  if [ -n "$reload" ] && has_systemd; then systemctl daemon-reload || ok=1; fi
  if [ -n "$ran" ]; then
    for f in "$T"/undo-post/*; do
      [ -f "$f" ] || continue
      sh "$f" < /dev/null || ok=1
    done
  fi
  if has_systemd; then
    for u in $units; do systemctl restart "$u" || ok=1; done
  fi
  return $ok
}

# finish STATUS: the result record, then release the run's lock and keep the newest directories.
finish() {
  discard
  printf 'status=%s\nstep=%s\n' "$1" "$STEP" > "$T/result.tmp" && mv -f -- "$T/result.tmp" "$T/result"
  if [ -f "$LOCK" ] && grep -qxF "run=$RUN" "$LOCK"; then rm -f -- "$LOCK"; fi
  for d in {{ backups }} {{ txn_dir }}; do
    set -- "$d"/*
    [ $# -gt {{ kept }} ] || continue
    if cd "$d" 2>/dev/null; then
      # The names are run ids netctl made (no newline, no leading dash): ls is safe here.
      # shellcheck disable=SC2010
      ls -1 | grep -vxF -e "$RUN" -e "$OWNER" | sort | head -n -{{ kept }} | while read -r old; do rm -rf -- "./$old"; done
    fi
  done
}

case ${1:-} in
  run)
    [ -e "$T/result" ] && { echo "run $RUN already ran on this node" >&2; exit 3; }
    echo $$ > "$T/pid"
    : > "$JOURNAL"
    mkdir -p -- "$BACKUPS" || { finish failed; exit 1; }
    STEP=prepare
    if ! prepare; then finish rolled-back; exit 1; fi
    while IFS= read -r line <&3; do
      STEP=$line
      if ! op "$line"; then
        echo "netctl-txn-failed $line" >&2
        if undo; then finish rolled-back; exit 1; fi
        finish undo-failed; exit 2
      fi
    done 3< "$T/ops"
    STEP=
    finish ok
    # A run that only re-ran the provider's (idempotent) commands changed no file: nothing to keep.
    if ! grep -qvE '^(ran [0-9]+|committed)$' "$JOURNAL"; then rm -rf -- "$T"; fi ;;
  undo)
    [ -e "$T/result" ] && exit 0
    STEP=interrupted
    if undo; then finish rolled-back; exit 0; fi
    finish undo-failed; exit 2 ;;
  *) echo "usage: txn.sh run|undo RUN" >&2; exit 2 ;;
esac
