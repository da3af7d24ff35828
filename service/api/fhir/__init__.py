"""The FHIR R4 REST API under /fhir: application/fhir+json, OperationOutcome errors."""
