"""`dss serve`: the HCA Data Store v1 API and the read-only RIA tree, over one store."""
