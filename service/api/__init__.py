"""HTTP interfaces of the gateway."""
