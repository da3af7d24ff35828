"""The sandbox hospital's deterministic synthetic data (no real person is described).

- three Organizations with fixed ids: the hospital (``sandbox-general-hospital``), the referring
  clinic (``riverside-clinic``) and the peer program the clinic refers to (``peer-program``, business
  identifier ``PEER_PROGRAM_IDENTIFIER``): the gateway polls ``Task?owner=Organization/peer-program``;
- Practitioners: the clinic's referring clinician (fixed id ``riverside-referrer``) and hospital
  clinicians, each with a valid (synthetic) NPI;
- ``patients`` Patients (50 by default) with a hospital MRN in ``HOSPITAL_MRN_SYSTEM``, values
  ``SBX100000``, ``SBX100001``, ... The first twelve are the twelve participants of the gateway's demo
  seed (same names, birth dates and MRNs), so a referral for one of them matches a known participant;
- a finished hospital Encounter for every other patient;
- no ServiceRequest or Task: referrals come from ``POST /sandbox/clinic/referral``.

Ids other than the fixed ones are uuid5 of the seed and a counter; everything carries
``meta.lastUpdated`` = ``SEED_INSTANT``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

SEED_INSTANT = datetime(2025, 1, 1, tzinfo=UTC)
HOSPITAL_MRN_SYSTEM = "https://sandbox-hospital.example.org/fhir/sid/mrn"
"""The hospital's MRN system (the gateway's demo seed records the same MRNs in this system)."""
ORGANIZATION_SYSTEM = "https://sandbox-hospital.example.org/fhir/sid/organization"
VISIT_SYSTEM = "https://sandbox-hospital.example.org/fhir/sid/visit"
CLINIC_PLACER_SYSTEM = "https://riverside-clinic.example.org/fhir/sid/referral"
"""The referring clinic's placer order numbers (ServiceRequest.identifier of its referrals)."""
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ORG_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"

HOSPITAL_ORG_ID = "sandbox-general-hospital"
CLINIC_ORG_ID = "riverside-clinic"
PEER_PROGRAM_ORG_ID = "peer-program"
PEER_PROGRAM_IDENTIFIER = (ORGANIZATION_SYSTEM, "PEER-0001")
CLINIC_PRACTITIONER_ID = "riverside-referrer"
HOSPITAL_NAME = "Sandbox General Hospital"
CLINIC_NAME = "Riverside Community Clinic"
PEER_PROGRAM_NAME = "Harbor Peer Support Collective"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sandbox-hospital.example.org")

# the gateway demo seed's twelve participants (service/seed.py): given, family, gender; birth dates follow
_DEMO_PEOPLE = [
    ("Avery", "Testperson", "female"),
    ("Blake", "Sampleton", "male"),
    ("Casey", "Demoson", "other"),
    ("Devon", "Fakename", "female"),
    ("Emery", "Placeholder", "male"),
    ("Finley", "Synthia", "unknown"),
    ("Harper", "Mockwell", "female"),
    ("Jamie", "Exampleby", "male"),
    ("Kendall", "Fixture", "female"),
    ("Logan", "Stubbs", "other"),
    ("Morgan", "Dummer", "male"),
    ("Quinn", "Notreal", "female"),
]
_GIVEN = ["Ari", "Bo", "Cam", "Dale", "Eli", "Fran", "Gale", "Hollis", "Indy", "Jules", "Kai", "Lane", "Marlo", "Noel"]
_FAMILY = ["Mockford", "Stubfield", "Fakerly", "Samplewood", "Testwell", "Dummond", "Placer", "Synthwick", "Fauxley"]
_CITIES = ["Portland", "Salem", "Eugene", "Gresham", "Beaverton"]
_CLINICIANS = [
    ("Pat", "Demo-Clinician", "Dr."),
    ("Lee", "Example-Md", "Dr."),
    ("Rae", "Sample-Np", None),
    ("Tam", "Mock-Lcsw", None),
    ("Sol", "Fake-Do", "Dr."),
    ("Vic", "Stub-Psychiatry", "Dr."),
]


@dataclass(frozen=True)
class SeedIndex:
    """Ids of the seeded resources, in seed order."""

    patient_ids: tuple[str, ...]
    practitioner_ids: tuple[str, ...]
    encounter_ids: tuple[str, ...]


def npi_with_check_digit(base: str) -> str:
    """A 10-digit NPI from 9 digits: the Luhn check digit over the 80840 prefix."""
    total = 0
    for i, char in enumerate(reversed("80840" + base + "0")):
        digit = int(char)
        if i % 2 == 1:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return base + str((10 - total % 10) % 10)


def _id(seed: int, kind: str, n: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{seed}/{kind}/{n}"))


def _organization(name: str, code: str, identifier: str, npi: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": identifier}, {"system": NPI_SYSTEM, "value": npi}],
        "active": True,
        "type": [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": code}]}],
        "name": name,
        "address": [{"city": "Portland", "state": "OR", "country": "US"}],
    }


def _practitioner(given: str, family: str, prefix: str | None, npi: str) -> dict[str, Any]:
    name: dict[str, Any] = {"family": family, "given": [given]}
    if prefix:
        name["prefix"] = [prefix]
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": NPI_SYSTEM, "value": npi}],
        "active": True,
        "name": [name],
    }


def _patient(i: int, given: str, family: str, gender: str, birth: date, city: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": HOSPITAL_MRN_SYSTEM,
                "value": mrn(i),
                "assigner": {"reference": f"Organization/{HOSPITAL_ORG_ID}", "display": HOSPITAL_NAME},
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": f"+1 503 555 {1000 + i:04d}", "use": "home"}],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [{"use": "home", "city": city, "state": "OR", "country": "US"}],
        "managingOrganization": {"reference": f"Organization/{HOSPITAL_ORG_ID}", "display": HOSPITAL_NAME},
    }


def mrn(i: int) -> str:
    """The MRN of the i-th seeded patient (0-based)."""
    return f"SBX{100000 + i}"


def seed(store: Store, seed_value: int, patients: int) -> SeedIndex:
    """Write the synthetic hospital into an empty store."""
    rng = random.Random(f"sandbox-seed-{seed_value}")  # noqa: S311 - reproducible, not secret

    def write(resource: dict[str, Any], resource_id: str) -> str:
        store.create(resource, resource_id=resource_id, at=SEED_INSTANT)
        return resource_id

    def npi() -> str:
        return npi_with_check_digit(str(rng.randrange(100_000_000, 999_999_999)))

    write(_organization(HOSPITAL_NAME, "prov", "SGH", npi()), HOSPITAL_ORG_ID)
    write(_organization(CLINIC_NAME, "prov", "RCC", npi()), CLINIC_ORG_ID)
    program = _organization(PEER_PROGRAM_NAME, "cg", PEER_PROGRAM_IDENTIFIER[1], npi())
    write(program, PEER_PROGRAM_ORG_ID)

    practitioners = [write(_practitioner("Robin", "Referwell", "Dr.", npi()), CLINIC_PRACTITIONER_ID)]
    for n, (given, family, prefix) in enumerate(_CLINICIANS):
        practitioners.append(write(_practitioner(given, family, prefix, npi()), _id(seed_value, "practitioner", n)))

    patient_ids: list[str] = []
    for i in range(patients):
        if i < len(_DEMO_PEOPLE):
            given, family, gender = _DEMO_PEOPLE[i]
            birth = date(1960 + 3 * i, 1 + i % 12, 1 + (7 * i) % 28)
        else:
            given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
            gender = rng.choice(["female", "male", "female", "male", "other", "unknown"])
            birth = date(1945, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
        resource = _patient(i, given, family, gender, birth, rng.choice(_CITIES))
        patient_ids.append(write(resource, _id(seed_value, "patient", i)))

    encounter_ids: list[str] = []
    for i in range(0, patients, 2):
        start = datetime(2024, 1, 8, 9, tzinfo=UTC) + timedelta(days=7 * (i // 2), hours=rng.randrange(0, 8))
        clinician = practitioners[1 + (i // 2) % len(_CLINICIANS)]
        encounter = {
            "resourceType": "Encounter",
            "identifier": [{"system": VISIT_SYSTEM, "value": f"V{200000 + i}"}],
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
                "display": "ambulatory",
            },
            "type": [{"text": "Outpatient visit"}],
            "subject": {"reference": f"Patient/{patient_ids[i]}"},
            "participant": [{"individual": {"reference": f"Practitioner/{clinician}"}}],
            "period": {
                "start": start.isoformat().replace("+00:00", "Z"),
                "end": (start + timedelta(minutes=40)).isoformat().replace("+00:00", "Z"),
            },
            "serviceProvider": {"reference": f"Organization/{HOSPITAL_ORG_ID}", "display": HOSPITAL_NAME},
        }
        encounter_ids.append(write(encounter, _id(seed_value, "encounter", i)))
    return SeedIndex(tuple(patient_ids), tuple(practitioners), tuple(encounter_ids))
