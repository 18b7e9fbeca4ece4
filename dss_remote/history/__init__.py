"""Bundle versions (a dataset at a commit, with its manifest) and the store's event journal."""
