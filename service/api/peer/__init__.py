"""The peer program's JSON API under /peer/v1."""
