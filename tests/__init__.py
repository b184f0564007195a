"""The test suite: a package, so that its helpers import as ``tests.support`` without any
change to ``sys.path``."""
