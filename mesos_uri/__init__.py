"""Apache Mesos URI fetcher and its Docker registry plugin, driving curl."""

import logging

# A library's loggers get no handler but this one (the logging HOWTO, "Configuring Logging for a
# Library"): without it Python's last-resort handler prints our warnings on stderr, where the CLI
# promises nothing unless -v asks for it.
logging.getLogger(__name__).addHandler(logging.NullHandler())
