#!/bin/sh
# dss-remote post-update hook, installed by `dss adopt` / `dss create-sibling` (rerun them to update).
# First runs the hook it replaced (kept as post-update.dss-chained), then records a bundle version,
# an event and webhook deliveries per pushed branch, and starts delivery and mirroring in the
# background. It never fails a push: problems are printed, and `dss sync` catches up.
hook_dir=$(dirname "$0")
if [ -x "$hook_dir/post-update.dss-chained" ]; then
    "$hook_dir/post-update.dss-chained" "$@"
fi
exec ${DSS_PYTHON:-@PYTHON@} -m dss_remote.hook "$@"
