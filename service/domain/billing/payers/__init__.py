"""Shipped payer rule sets (TOML data, read by service.domain.billing.load_payers)."""
