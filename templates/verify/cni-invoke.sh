# netctl verify: one CNI plugin invocation for a test pod: $PLUGIN with the CNI_* variables in its
# environment and $CONFIG on stdin. With MAKE_NETNS set the pod's network namespace is made first;
# with DROP_NETNS set it goes after (the pod's last DEL). Exits with the plugin's status (1 when
# the namespace could not be made or removed).
if [ -n "$MAKE_NETNS" ]; then ip netns add "$POD" || exit 1; fi
export CNI_COMMAND CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_PATH
printf '%s\n' "$CONFIG" | "$PLUGIN"
rc=$?
if [ -n "$DROP_NETNS" ]; then ip netns del "$POD" 2>/dev/null || [ ! -e "$CNI_NETNS" ] || rc=1; fi
exit $rc
