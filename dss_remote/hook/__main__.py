"""`python -m dss_remote.hook REF...`: what the installed post-update hook runs in a bare repo."""

import sys

from .post_update import main

sys.exit(main())
