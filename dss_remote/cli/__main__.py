"""`python -m dss_remote.cli`: `dss` without a PATH lookup (the push hook starts the deliverer so)."""

import sys

from . import main

sys.exit(main())
