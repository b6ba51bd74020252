#!/bin/sh
# A provider's own routes, by who made them: every IPv4 route inside ROOT (its pod network)
# whose protocol is one of "$@" (blackholes included), in every routing table. Routes of the
# same protocol outside ROOT, and routes inside it made by anyone else, stay.
set -eu
for proto in "$@"; do
    ip -4 route flush table all root "$ROOT" proto "$proto"
done
