"""Subscriptions, the durable outbox, the deliverer and the signed request."""
