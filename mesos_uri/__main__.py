"""``python -m mesos_uri`` is ``python -m mesos_uri.fetch``."""

from mesos_uri.fetch import run

run()
