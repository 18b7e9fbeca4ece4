"""`python -m dss_remote.post_update`: what a hook installed by dss-remote 0.1 runs."""

import sys

from dss_remote.hook.post_update import main

sys.exit(main())
