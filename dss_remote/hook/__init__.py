"""What the post-update hook does after a push, its catch-up by `dss sync`, and its installation."""
