# netctl verify: every ping of a node at once, in the background, then wait. Arguments come in
# fives: WHERE KIND LABEL IP SIZE, WHERE `host` (from the node) or `pod` (from inside test pod
# $POD's network namespace), SIZE 0 for a plain ping or the don't-fragment payload size. Prints
# `@@ok KIND LABEL IP` or `@@fail KIND LABEL IP` per ping; a failed ping is retried once with a
# longer wait before it counts.
ping_in() {
  if [ "$1" = pod ]; then shift; ip netns exec "$POD" ping "$@"; else shift; ping "$@"; fi
}
pp() {
  w=$1 k=$2 l=$3 t=$4; shift 4
  if ping_in "$w" -n -q -c1 -W1 "$@" "$t" >/dev/null 2>&1 || ping_in "$w" -n -q -c1 -W2 "$@" "$t" >/dev/null 2>&1; then
    echo "@@ok $k $l $t"
  else
    echo "@@fail $k $l $t"
  fi
}
while [ $# -ge 5 ]; do
  if [ "$5" = 0 ]; then pp "$1" "$2" "$3" "$4" & else pp "$1" "$2" "$3" "$4" -M "do" -s "$5" & fi
  shift 5
done
wait
