"""FHIR R4 plumbing shared by the mappings and the FHIR API."""
