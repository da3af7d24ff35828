"""Audit records as FHIR R4 AuditEvents, in the shape of the IHE Basic Audit Log Patterns (BALP).

- type/subtype: RESTful interactions are ``audit-event-type#rest`` with the
  ``restful-interaction`` code (read, vread, search-type, history-instance, create, update, patch,
  transaction; the peer API's operations map to the same codes), a search is DICOM ``110112 Query``;
  a token is ``110114 User Authentication`` / ``110122 Login``; a refusal and an admin change are
  ``110113 Security Alert`` (``110132 Use of Restricted Function``, ``110137 User Security Attributes
  Changed``, ``110129 Security Configuration``); use of the audit log itself is ``110101 Audit Log
  Used``; an outbound delivery ``110106 Export``, an inbound poll ``110107 Import``. Every event also
  carries PeerLink's own subtype code (``{base}/CodeSystem/audit-event-subtype``).
- agents: for a request to PeerLink, the client (``110153 Source Role ID``, ``who.identifier.value``
  = client id, requestor, network address), the organisation it acts for (``IRCP`` information
  recipient) and PeerLink (``110152 Destination Role ID``); for an exchange, PeerLink (requestor,
  with its client id at the EHR; source of a delivery, destination of a poll), the EHR connection
  and, for a delivery, the EHR's organisation as recipient. The source is PeerLink
  (``source.observer.display``, source type 4 Application Server).
- entities: each Patient (role 1 Patient), each resource (role 4 Domain Resource), the query of a
  search (role 24 Query, base64 in ``entity.query``); purpose of use in ``purposeOfEvent``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from typing import Any

from .chain import QUERY_SUBTYPES, instant, patient_id

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NPI = "http://hl7.org/fhir/sid/us-npi"
GATEWAY = "PeerLink"

_DCM_DISPLAY = {
    "110100": "Application Activity",
    "110101": "Audit Log Used",
    "110106": "Export",
    "110107": "Import",
    "110112": "Query",
    "110113": "Security Alert",
    "110114": "User Authentication",
    "110122": "Login",
    "110129": "Security Configuration",
    "110132": "Use of Restricted Function",
    "110137": "User Security Attributes Changed",
    "110152": "Destination Role ID",
    "110153": "Source Role ID",
}
_RESTFUL_DISPLAY = {
    "read": "read",
    "vread": "vread",
    "update": "update",
    "patch": "patch",
    "delete": "delete",
    "history-instance": "history-instance",
    "history-type": "history-type",
    "history-system": "history-system",
    "create": "create",
    "search-type": "search-type",
    "search-system": "search-system",
    "capabilities": "capabilities",
    "transaction": "transaction",
    "batch": "batch",
    "operation": "operation",
}
REST_SUBTYPES = {
    "read": "read",
    "vread": "vread",
    "search": "search-type",
    "history": "history-instance",
    "create": "create",
    "update": "update",
    "patch": "patch",
    "delete": "delete",
    "transaction": "transaction",
    "capabilities": "capabilities",
    "peer-read": "read",
    "peer-list": "search-type",
    "peer-create": "create",
    "peer-update": "update",
    "peer-action": "operation",
}
"""PeerLink rest subtype -> FHIR restful-interaction code."""
AUDIT_USE = frozenset({"audit-search", "disclosure-report", "audit-archive", "audit-verify"})
SECURITY_SUBTYPES = {"token": ("110114", "110122"), "access-refused": ("110113", "110132")}
ADMIN_SUBTYPES = {
    "client-add": "110137",
    "client-disable": "110137",
    "client-enable": "110137",
    "key-rotate": "110129",
}
EXCHANGE_TYPES = {"deliver": "110106", "poll": "110107"}


def subtype_system(base: str) -> str:
    return f"{base.rstrip('/')}/CodeSystem/audit-event-subtype"


def _dcm(code: str) -> dict[str, str]:
    return {"system": DCM, "code": code, "display": _DCM_DISPLAY[code]}


def _restful(code: str) -> dict[str, str]:
    return {"system": RESTFUL, "code": code, "display": _RESTFUL_DISPLAY.get(code, code)}


def restful_code(subtype: str, detail: Mapping[str, Any]) -> str | None:
    """The restful-interaction code of a rest event (``detail.interaction`` wins when given)."""
    given = detail.get("interaction")
    if isinstance(given, str) and given in _RESTFUL_DISPLAY:
        return given
    return REST_SUBTYPES.get(subtype)


def event_codes(
    event_type: str, subtype: str, detail: Mapping[str, Any]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """AuditEvent.type and the standard subtype codings (PeerLink's own subtype is added by the caller)."""
    if event_type == "rest":
        code = restful_code(subtype, detail)
        subtypes = [_restful(code)] if code else []
        if subtype in QUERY_SUBTYPES or code == "search-type":
            return _dcm("110112"), subtypes
        return {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}, subtypes
    if event_type == "security" and subtype in SECURITY_SUBTYPES:
        kind, sub = SECURITY_SUBTYPES[subtype]
        return _dcm(kind), [_dcm(sub)]
    if event_type == "security":
        return _dcm("110113"), []
    if event_type == "admin" and subtype in AUDIT_USE:
        return _dcm("110101"), []
    if event_type == "admin":
        sub_code = ADMIN_SUBTYPES.get(subtype)
        return _dcm("110113"), [_dcm(sub_code)] if sub_code else []
    if event_type == "exchange" and subtype in EXCHANGE_TYPES:
        return _dcm(EXCHANGE_TYPES[subtype]), []
    return _dcm("110100"), []


def fhir_type_code(event_type: str, subtype: str, detail: Mapping[str, Any] | None = None) -> str:
    return event_codes(event_type, subtype, detail or {})[0]["code"]


def _identifier(organization: str) -> dict[str, str]:
    system, bar, value = organization.partition("|")
    if bar and value:
        return {"system": system, "value": value} if system else {"value": value}
    if organization.isdigit() and len(organization) == 10:
        return {"system": NPI, "value": organization}
    return {"value": organization}


def _network(address: str) -> dict[str, str]:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return {"address": address, "type": "1"}  # machine name
    return {"address": address, "type": "2"}  # IP address


def purpose_concept(purpose: str) -> dict[str, Any]:
    system, bar, code = purpose.partition("|")
    if bar:
        return {"coding": [{"system": system, "code": code}]} if system else {"text": code}
    if purpose.isalnum() and purpose.isupper():  # a v3 ActReason code such as TREAT, HPAYMT, HOPERAT
        return {"coding": [{"system": ACT_REASON, "code": purpose}]}
    return {"text": purpose}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def audit_event(row: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The AuditEvent of a stored record (``row``: the columns of audit_log). ``base``: the FHIR base
    URL, under which PeerLink's own subtype code system is named."""
    detail: Mapping[str, Any] = row["detail"] or {}
    event_type, subtype = str(row["type"]), str(row["subtype"])
    type_coding, subtypes = event_codes(event_type, subtype, detail)
    subtypes.append({"system": subtype_system(base), "code": f"{event_type}.{subtype}"})
    purpose = detail.get("purpose")
    purposes = [purpose_concept(purpose)] if isinstance(purpose, str) and purpose else []

    client_id, organization, address = row["client_id"], row["organization"], row["address"]
    if event_type == "exchange":
        agents = _exchange_agents(subtype, client_id, organization, address, detail, purposes)
    else:
        agents = _requester_agents(client_id, organization, address, purposes)

    entities: list[dict[str, Any]] = []
    patients: dict[str, None] = {}
    for value in _strings(detail.get("patients")):
        patients[patient_id(value)] = None
    resources = _strings(detail.get("entities"))
    for value in resources:
        if value.startswith("Patient/"):
            patients[patient_id(value)] = None
    for pid in patients:
        entities.append(
            {
                "what": {"reference": f"Patient/{pid}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    for value in dict.fromkeys(resources):
        if value.startswith("Patient/") and patient_id(value) in patients:
            continue
        entities.append(
            {
                "what": {"reference": value},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    query = detail.get("query")
    if isinstance(query, str) and query:
        entities.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    for key, display in (("client", "client registration"), ("kid", "signing key")):
        target = detail.get(key)
        if isinstance(target, str) and target:
            entities.append(
                {
                    "what": {"identifier": {"value": target}, "display": f"{display} {target}"},
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "13", "display": "Security Resource"},
                }
            )

    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row["seq"]),
        "meta": {"lastUpdated": instant(row["recorded"])},
        "type": type_coding,
        "subtype": subtypes,
        "action": row["action"],
        "recorded": instant(row["recorded"]),
        "outcome": row["outcome"],
    }
    described = _outcome_text(detail)
    if described:
        event["outcomeDesc"] = described
    if purposes:
        event["purposeOfEvent"] = purposes
    event["agent"] = agents
    event["source"] = {
        "site": GATEWAY,
        "observer": {"display": GATEWAY},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    if entities:
        event["entity"] = entities
    return event


def _requester_agents(
    client_id: str | None, organization: str | None, address: str | None, purposes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A request to PeerLink: the client (source, requestor), the organisation it acts for (the
    information recipient), PeerLink (destination)."""
    client: dict[str, Any] = {"type": {"coding": [_dcm("110153")]}, "requestor": True}
    if client_id:
        client["who"] = {"identifier": {"value": client_id}, "display": client_id}
        client["altId"] = client_id
    else:
        client["who"] = {"display": "unidentified client"}
    if address:
        client["network"] = _network(address)
    if purposes:
        client["purposeOfUse"] = purposes
    agents = [client]
    if organization:
        agents.append(_recipient(organization))
    agents.append({"type": {"coding": [_dcm("110152")]}, "who": {"display": GATEWAY}, "requestor": False})
    return agents


def _exchange_agents(
    subtype: str,
    client_id: str | None,
    organization: str | None,
    address: str | None,
    detail: Mapping[str, Any],
    purposes: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """PeerLink's own exchange with an EHR: PeerLink asks (requestor; ``client_id`` is its client id
    at the EHR), the source of a delivery and the destination of a poll; the EHR (the connection
    named in ``detail.endpoint``, its organisation the recipient of a delivery) the other end."""
    outbound = subtype != "poll"
    gateway: dict[str, Any] = {
        "type": {"coding": [_dcm("110153" if outbound else "110152")]},
        "who": {"identifier": {"value": client_id}, "display": GATEWAY} if client_id else {"display": GATEWAY},
        "requestor": True,
    }
    if purposes:
        gateway["purposeOfUse"] = purposes
    endpoint = detail.get("endpoint")
    ehr: dict[str, Any] = {
        "type": {"coding": [_dcm("110152" if outbound else "110153")]},
        "who": {"display": endpoint if isinstance(endpoint, str) and endpoint else organization or "EHR"},
        "requestor": False,
    }
    if organization:
        ehr["who"]["identifier"] = _identifier(organization)
    if address:
        ehr["network"] = _network(address)
    agents = [gateway, ehr]
    if organization and outbound:
        agents.append(_recipient(organization))
    return agents


def _recipient(organization: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}]},
        "who": {"identifier": _identifier(organization), "display": organization},
        "requestor": False,
    }


def _outcome_text(detail: Mapping[str, Any]) -> str | None:
    parts = []
    status = detail.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        parts.append(f"HTTP {status}")
    for key in ("reason", "error"):
        value = detail.get(key)
        if isinstance(value, str) and value:
            parts.append(value)
    return ": ".join(parts) if parts else None
