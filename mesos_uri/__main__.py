"""``python -m mesos_uri`` is ``python -m mesos_uri.fetch``."""

import sys

from mesos_uri.fetch import main

sys.exit(main())
