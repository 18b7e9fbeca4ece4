"""Settings, declared once: the special remote's (config/settings.py), the store's `dss/config.json`
(store_config.py) with its mirrors and webhook delivery policy, and every `dss/...` path (paths.py).

Imports only ria_store: every other package may read its settings from here.
"""
