"""Apache Mesos URI fetcher and its Docker registry plugin, driving curl."""
