"""SMART backend-services security: authorization server, token checks, scopes, data boundaries."""
