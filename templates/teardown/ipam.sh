#!/bin/sh
# host-local's reservations for network NETWORK (one file per address under
# CNI_NETWORKS/NETWORK, naming on its first line the container it was handed to) whose pod no
# longer exists. Where the runtime answers (crictl), a pod exists when it lists the id; where none
# answers, this runs only because the provider is leaving the node (switch, reset), whose pods
# are all recreated on the next network: then none of the old network's reservations is kept.
# When no reservation is left, the network's directory goes too (its lock and cursor with it).
set -eu
dir=$CNI_NETWORKS/$NETWORK
if [ ! -d "$dir" ] || [ -L "$dir" ]; then exit 0; fi

live=
asked=
if command -v crictl >/dev/null 2>&1 && live=$(crictl pods -q --no-trunc 2>/dev/null); then
    asked=1
fi

kept=
for f in "$dir"/*; do
    if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
    name=${f##*/}
    # Reservations are named by address; the lock, the cursors and anything else are not.
    case $name in
        *[!0-9a-fA-F.:]* | "") continue ;;
    esac
    if [ -n "$asked" ]; then
        id=$(head -n 1 -- "$f")
        if [ -n "$id" ] && printf '%s\n' "$live" | grep -qxF -e "$id"; then
            kept=1
            continue
        fi
    fi
    rm -f -- "$f"
done
if [ -z "$kept" ]; then
    rm -f -- "$dir/lock" "$dir"/last_reserved_ip.*
    rmdir -- "$dir" 2>/dev/null || true
fi
