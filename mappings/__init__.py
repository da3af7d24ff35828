"""Pure mappings between the peer-support domain and FHIR R4 (no I/O)."""
