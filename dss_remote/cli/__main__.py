"""`python -m dss_remote.cli`: what the hook and background jobs run (no PATH needed)."""

import sys

from . import main

sys.exit(main())
