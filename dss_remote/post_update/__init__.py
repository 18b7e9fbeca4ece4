"""Compatibility: hooks installed by dss-remote 0.1 run `python -m dss_remote.post_update`.

The hook's code lives in `dss_remote.hook`; this package only keeps those hooks recording bundle
versions until `dss adopt STORE` rewrites them to run `python -m dss_remote.hook`.
"""
