"""Who is calling and what they may do: dss tokens, trusted JWT issuers, per-dataset ACLs, audit."""
