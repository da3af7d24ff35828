"""PeerLink: a FHIR integration gateway for mental-health peer-support programs."""

__version__ = "0.1.0"
