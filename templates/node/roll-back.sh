# netctl switch rollback: put back the files run $RUN changed, from its backups under $BACKUPS.
# Each argument is KIND:PATH: `absent:` a file the run created (removed), `existed:` one it
# replaced or removed (its backup copied back, when the run made one), `prior:` a file that is
# put back as it was before the run: its backup where there is one, else it did not exist
# (removed). Stops at the first failure.
for a in "$@"; do
  kind=${a%%:*}; path=${a#*:}
  if [ "$kind" = prior ]; then
    if [ -e "$BACKUPS$path" ]; then kind=existed; else kind=absent; fi
  fi
  if [ "$kind" = existed ] && [ ! -e "$BACKUPS$path" ]; then continue; fi
  put_back "$kind" "$path" || exit 1
done
