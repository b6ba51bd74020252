# netctl release: remove the node lock $LOCK only if run $RUN holds it (never another run's).
if [ -f "$LOCK" ] && grep -qxF "run=$RUN" "$LOCK"; then rm -f "$LOCK"; fi
