"""The pieces of ``make bench`` (``scripts/bench.py``).

- ``proxy``: a TCP proxy that adds network latency on loopback, run as a child process;
- ``runner``: running one tool under a waiter that times it and reads its peak RSS;
- ``world``: the registries, their proxies, the images pushed to them, the peers' virtualenv;
- ``tools``: the command line of every tool compared, and how its result is checked;
- ``agent``: one already-imported python process that fetches on request (the agent's path);
- ``plan``: which cases are measured, with which tools, against which targets;
- ``report``: tables, ratios and the pass or miss mark of every target.

The peers' scripts (``scripts/peers/``) are not imported: they run under the peers' virtualenv.
"""
