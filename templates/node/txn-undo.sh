# netctl: put back the transaction of run $RUN that never finished, with its own script in $T
# (detached from the SSH session, as it ran; its output goes on its log).
setsid -w sh "$T/txn.sh" undo "$RUN" < /dev/null >> "$T/log" 2>&1
