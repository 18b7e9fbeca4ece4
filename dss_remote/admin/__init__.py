"""Store and dataset administration: init, mirrors, quorum, create-sibling."""
