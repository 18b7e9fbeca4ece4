"""Metadata search: bundle documents, the query languages, and the indexes that answer them."""
