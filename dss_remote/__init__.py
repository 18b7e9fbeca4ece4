"""dss-remote: a RIA research-data store with a multi-replica git-annex special remote."""

__version__ = "0.1.0"
