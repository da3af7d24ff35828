"""Billing throughput, in process (the pure parts; no database): claim readiness for a year of a
50-specialist program, and the 837P of 5,000 claims, each beside a bare loop over the same rows.

    python -m tests.bench.bench_billing [SESSIONS] [CLAIMS]

- readiness: ``assess`` judging SESSIONS finished sessions (default 60,000: 50 specialists, 1,000
  participants under the three state payers, a year of sessions with signed notes, an accepted coded
  referral and coverage each); the bare loop reads the same rows and counts each one's units (the
  floor: what touching every row costs);
- 837P: ``claim837.build`` writing CLAIMS claims (default 5,000, the most one transaction holds) from
  ready lines; the bare loop joins one short segment per claim; and pyx12's validation of the first
  200 of them (zero errors expected).
Printed: sessions/s and claims/s, the bare loops' rows/s, and ours/bare (how many times the floor the
real work costs). Both figures come from the same run, so a slower machine moves both. The built
fixture is frozen out of the garbage collector's reach (gc.freeze) before timing: otherwise every
collection the timed work triggers rescans the 60,000 sessions' objects, which halves sessions/s.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from mappings.x12 import claim837 as x12
from mappings.x12.validate import validate
from service.domain import Note, Participant, PeerEncounter, PeerSpecialist, Program, Referral
from service.domain.billing import PAYERS_DIR, PayerRegistry, load_payers
from service.domain.billing.facts import SessionFacts
from service.domain.billing.readiness import ReadinessLine, assess
from service.domain.coverage import Coverage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPECIALISTS = 50
PARTICIPANTS = 1000
PAYERS = [("tx-medicaid", "TX"), ("nj-medicaid-sud", "NJ"), ("nc-medicaid", "NC")]
VALIDATED = 200  # claims checked with pyx12 (about 200 claims/s: the full 5,000 would take half a minute)


def registry() -> PayerRegistry:
    folder = Path(tempfile.mkdtemp(prefix="bench-payers-"))
    for payer in ("tx-medicaid", "nj-medicaid-sud"):
        (folder / f"{payer}.toml").write_text((PAYERS_DIR / f"{payer}.toml").read_text() + 'per_unit = "10.00"\n')
    return load_payers(folder)


def _meta(prefix: str, n: int) -> dict[str, Any]:
    return {"id": f"{prefix}-{n}", "program_id": "p", "version": 1, "created_at": T0, "updated_at": T0}


def build(sessions: int) -> tuple[Program, list[SessionFacts]]:
    program = Program.model_validate(
        {"id": "p", "version": 1, "created_at": T0, "updated_at": T0, "code": "bench", "name": "Bench",
         "identifier_system": "https://bench.example.org/ids", "npi": "1881000008"}
    )  # fmt: skip
    people = []
    for n in range(PARTICIPANTS):
        payer, state = PAYERS[n % 3]
        specialists = [
            PeerSpecialist.model_validate(
                {
                    **_meta(f"s{state}", s),
                    "name": {"family": "Peer"},
                    "languages": ["en"],
                    "npi": "1881000016",
                    "certification": {
                        "state": state,
                        "number": "C",
                        "issued_on": "2024-01-01",
                        "expires_on": "2030-01-01",
                    },
                }
            )
            for s in (n % SPECIALISTS,)
        ]
        person = Participant.model_validate(
            {**_meta("part", n), "name": {"family": "X"}, "birth_date": "1980-01-01", "gender": "other"}
        )
        referral = Referral.model_validate(
            {**_meta("ref", n), "participant_id": person.id, "referring_organization": {"name": "Clinic"},
             "referring_clinician": {"name": {"family": "Doc"}}, "status": "accepted",
             "reason": {"text": "SUD", "code": "F11.20", "system": "http://hl7.org/fhir/sid/icd-10-cm"},
             "requested_at": datetime(2025, 12, 1, tzinfo=UTC)}
        )  # fmt: skip
        coverage = Coverage.model_validate(
            {**_meta("cov", n), "participant_id": person.id, "payer": payer, "member_id": f"M{n}",
             "period": {"start": "2025-01-01"}}
        )  # fmt: skip
        people.append((person, specialists[0], [referral], [coverage]))
    facts = []
    for i in range(sessions):
        person, specialist, referrals, coverages = people[i % PARTICIPANTS]
        start = T0 + timedelta(days=(i * 365) // sessions, hours=8 + i % 9)
        encounter = PeerEncounter.model_validate(
            {**_meta("enc", i), "participant_id": person.id, "specialist_id": specialist.id, "start": start,
             "end": start + timedelta(minutes=20 + i % 50), "modality": ["in-person", "video", "phone"][i % 3],
             "support_categories": ["emotional"], "status": "finished"}
        )  # fmt: skip
        note = Note.model_validate(
            {**_meta("note", i), "encounter_id": encounter.id, "author_id": specialist.id, "text": "Plan.",
             "status": "final", "signed_at": start}
        )  # fmt: skip
        facts.append(SessionFacts(encounter, person, specialist, [note], referrals, coverages))
    return program, facts


def claims_of(lines: list[ReadinessLine], count: int) -> list[x12.ClaimLine]:
    ready = [line for line in lines if line.status == "ready"]
    found = []
    for n in range(count):
        line = ready[n % len(ready)]
        found.append(
            x12.ClaimLine(
                claim_number=f"C{n + 1:09d}", line_control=f"C{n + 1:09d}-1", frequency=x12.ORIGINAL,
                original_claim=None, member_id=line.member_id or "M", subscriber=x12.Person("EXAMPLE", "ROBIN"),
                birth_date=date(1980, 1, 1), gender="other", address=None, sequence="P", plan=None,
                group_number=None, rendering=x12.Person("PEER", "PAT"), rendering_npi=line.rendering_npi or "",
                procedure=line.procedure_code, modifiers=line.modifiers, units=line.units,
                charge=line.charge or Decimal(0), place_of_service=line.place_of_service,
                service_date=line.date_of_service, diagnoses=line.diagnosis_codes,
            )
        )  # fmt: skip
    return found


def interchange(claims: list[x12.ClaimLine]) -> x12.Interchange:
    place = x12.Place("1 MAIN ST", "RALEIGH", "NC", "27601-0001")
    return x12.Interchange(
        sender=x12.Party("BENCH", "1881000008"), receiver=x12.Party("CH", "TESTCH"), payer=x12.Party("PAYER", "P1"),
        claim_filing="MC", provider=x12.BillingProvider("BENCH", "1881000008", "990000001", place, "251S00000X", None),
        interchange_control=1, group_control=1, transaction_control=1, created=T0, claims=claims,
    )  # fmt: skip


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def main(sessions: int = 60_000, claims: int = 5_000) -> dict[str, Any]:
    payers = registry()
    program, facts = build(sessions)
    rules = payers.get("nc-medicaid")
    gc.collect()
    gc.freeze()  # the fixture's objects are not rescanned by every collection the timed work triggers

    def bare_readiness() -> int:
        total = 0
        for f in facts:
            assert f.encounter.end is not None
            total += rules.units.count(int((f.encounter.end - f.encounter.start).total_seconds() // 60))
        return total

    ours, lines = timed(lambda: assess(facts, payers, program))
    bare, _ = timed(bare_readiness)
    ready = sum(1 for line in lines if line.status == "ready")
    print(
        f"readiness: {sessions} sessions ({SPECIALISTS} specialists, {PARTICIPANTS} participants, a year; "
        f"{ready} ready) in {ours:.2f} s: {sessions / ours:.0f} sessions/s; bare loop {sessions / bare:.0f} rows/s; "
        f"ours/bare {ours / bare:.1f}x"
    )
    batch = interchange(claims_of(lines, claims))
    written, text = timed(lambda: x12.build(batch))
    floor, _ = timed(lambda: "".join(f"CLM*{c.claim_number}*{c.charge}~" for c in batch.claims))
    segments = text.count("~")
    print(
        f"837P: {claims} claims ({segments} segments, {len(text) // 1024} KiB) in {written:.3f} s: "
        f"{claims / written:.0f} claims/s; bare loop {claims / floor:.0f} rows/s; ours/bare {written / floor:.1f}x"
    )
    sample = x12.build(interchange(batch.claims[:VALIDATED]))
    checked, problems = timed(lambda: validate(sample))
    count = min(claims, VALIDATED)
    print(f"pyx12 validation of an 837P of {count} claims: {count / checked:.0f} claims/s, {len(problems)} errors")
    gc.unfreeze()
    return {
        "sessions_per_s": sessions / ours,
        "bare_sessions_per_s": sessions / bare,
        "claims_per_s": claims / written,
        "bare_claims_per_s": claims / floor,
        "ready": ready,
        "text": text,
    }


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
