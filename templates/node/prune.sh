# netctl prune: in each directory given, keep the newest $KEPT entries (run ids sort by time).
for d in "$@"; do
  if cd "$d" 2>/dev/null; then
    # The names are run ids netctl made (no newline, no leading dash): ls is safe here.
    # shellcheck disable=SC2012
    ls -1 | sort | head -n -"$KEPT" | while read -r old; do rm -rf -- "./$old"; done
    cd /
  fi
done
