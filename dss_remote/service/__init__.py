"""Bundles as a service, outside HTTP: deposits (the file pool, staged and uploaded content),
bundle commits made for writers who are not DataLad users, checkouts and collections."""
