"""What the program screens gather, built on records made through the peer API: the caseload rule,
the referral inbox with its match suggestions and accept/reject steps, the timeline (notes only
when asked for), the outcome chart, claim readiness and the accounting of disclosures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mappings.ids import fhir_id
from service.console.program import chart, claims, disclosures, inbox, participants, timeline
from service.domain.billing import load_payers
from service.domain.errors import IllegalTransition, NotFound, PreconditionFailed, RuleViolation
from service.domain.instruments import load_registry
from service.domain.matching.config import load_config
from service.domain.referral import ReferralStatus
from service.records.assessments import Series
from tests.conftest import token_headers
from tests.factories import (
    TODAY,
    World,
    assessment_body,
    at,
    consent_body,
    create,
    participant_body,
)

HOSPITAL = {"type": "other", "system": "urn:oid:2.16.840.1.113883.3.7001", "value": "general-hospital"}


@pytest.fixture
async def world(client):
    return await World(client).build()


async def test_participant_listing_all_or_some(client, database, program, world):
    other = (await create(client, "participants", participant_body(identifiers=[])))["id"]
    async with database.read() as conn:
        page = await participants.listing(conn, program.id, only={other})
        assert [p.id for p in page.items] == [other] and page.next_cursor is None
        everyone = await participants.listing(conn, program.id, only=None)
        assert {p.id for p in everyone.items} == {world.ids["participant"], other}
        assert (await participants.listing(conn, program.id, only=set())).items == []


async def test_inbox_accept_through_matching(client, database, program, world):
    config = load_config()
    now = datetime.now(UTC)
    async with database.read() as conn:
        items = await inbox.inbox(conn, program.id)
        assert [i.referral.id for i in items] == [world.ids["referral"]]
        assert items[0].participant == "Robin Example"
        review = await inbox.review(conn, program, world.ids["referral"], config, TODAY)
    assert review.open and review.referral.status is ReferralStatus.REQUESTED
    assert [m.specialist_id for m in review.ranking.matches] == [world.ids["specialist"]]
    async with database.transaction() as conn:
        with pytest.raises(PreconditionFailed):
            await inbox.accept(
                conn,
                program,
                world.ids["referral"],
                world.ids["specialist"],
                reason="fits",
                by="admin@test",
                config=config,
                expected_version=review.referral.version + 1,
                now=now,
            )
    async with database.transaction() as conn:
        done = await inbox.accept(
            conn,
            program,
            world.ids["referral"],
            world.ids["specialist"],
            reason="fits",
            by="admin@test",
            config=config,
            expected_version=review.referral.version,
            now=now,
        )
    assert done.referral.status is ReferralStatus.ACCEPTED
    assert [t.action.value for t in done.referral.transitions] == ["receive", "accept"]
    assert done.referral.match is not None and done.referral.match.rank == 1
    async with database.read() as conn:
        assert await inbox.inbox(conn, program.id) == []
        assert not (await inbox.review(conn, program, world.ids["referral"], config, TODAY)).open
    async with database.transaction() as conn:
        with pytest.raises(IllegalTransition):
            await inbox.reject(
                conn,
                program.id,
                world.ids["referral"],
                reason="no",
                by="a",
                expected_version=done.referral.version,
                now=now,
            )


async def test_inbox_reject_needs_a_reason(client, database, program, world):
    async with database.read() as conn:
        version = (await inbox.inbox(conn, program.id))[0].referral.version
    async with database.transaction() as conn:
        with pytest.raises(RuleViolation):
            await inbox.reject(
                conn,
                program.id,
                world.ids["referral"],
                reason="",
                by="a",
                expected_version=version,
                now=datetime.now(UTC),
            )
    async with database.transaction() as conn:
        rejected = await inbox.reject(
            conn,
            program.id,
            world.ids["referral"],
            reason="outside our area",
            by="a",
            expected_version=version,
            now=datetime.now(UTC),
        )
    assert rejected.status is ReferralStatus.REJECTED
    assert rejected.transitions[-1].reason == "outside our area"
    async with database.read() as conn:
        with pytest.raises(NotFound):
            await inbox.review(conn, program, "no-such-referral", load_config(), TODAY)


async def test_timeline_withholds_notes_unless_asked(client, database, program, world):
    p, s = world.ids["participant"], world.ids["specialist"]
    for days, value in ((40, 3), (2, 1)):
        items = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
        await create(
            client,
            "assessments",
            assessment_body(
                p, s, completed_at=at(days).isoformat(), answers=[{"link_id": i, "value": value} for i in items]
            ),
        )
    registry = load_registry()
    async with database.read() as conn:
        full = await timeline.timeline(conn, program.id, p, registry, notes=True)
        bare = await timeline.timeline(conn, program.id, p, registry, notes=False)
    kinds = [e.kind for e in full.entries]
    assert sorted(kinds) == ["assessment", "assessment", "referral", "session"]
    assert [e.at for e in full.entries] == sorted((e.at for e in full.entries), reverse=True)
    session = next(e for e in full.entries if isinstance(e, timeline.SessionEntry))
    assert [n.id for n in session.notes] == [world.ids["note"]] and session.specialist == "Pat Peer"
    assert all(not e.notes for e in bare.entries if isinstance(e, timeline.SessionEntry)) and not bare.notes_shown
    [series] = full.series
    assert [pt.assessment.total for pt in series.points] == [21, 7]
    svg = str(chart.outcome_svg(series, "gad"))
    assert svg.count("<circle") == 2 and "<polyline" in svg and 'aria-labelledby="gad-title gad-desc"' in svg
    assert "baseline 21" in chart.describe(series) and "latest 7" in chart.describe(series)
    async with database.read() as conn:
        with pytest.raises(NotFound):
            await timeline.timeline(conn, program.id, "nobody", registry, notes=False)


async def test_chart_escapes_and_draws_a_single_point(client, database, program, world):
    await create(client, "assessments", assessment_body(world.ids["participant"], world.ids["specialist"]))
    async with database.read() as conn:
        found = await timeline.timeline(conn, program.id, world.ids["participant"], load_registry(), notes=False)
    [series] = found.series
    svg = str(chart.outcome_svg(series, "one"))
    assert svg.count("<circle") == 1 and "<polyline" not in svg
    odd = Series(series.instrument.model_copy(update={"title": "A & <B>"}), series.points)
    drawn = str(chart.outcome_svg(odd, "odd"))
    assert "A &amp; &lt;B&gt;" in drawn and "<B>" not in drawn


async def test_claim_readiness_names_and_reasons(client, database, program, world):
    async with database.read() as conn:
        view = await claims.readiness(conn, program, load_payers(), TODAY - timedelta(days=30), TODAY, None)
    assert [line.session_id for line in view.lines] == [world.ids["encounter"]]
    assert view.participants == {world.ids["participant"]: "Robin Example"}
    assert view.specialists == {world.ids["specialist"]: "Pat Peer"}
    assert view.blocked == 1 and view.ready == 0  # the note is a draft, no coverage, no accepted referral
    codes = {r.code for r in view.reasons}
    assert "note-unsigned" in codes
    assert all(r.count >= 1 and r.example for r in view.reasons)
    assert claims.default_period(TODAY) == (TODAY - timedelta(days=30), TODAY)


async def test_disclosures_of_a_real_read(anonymous, client, database, program, world):
    p = world.ids["participant"]
    await create(
        client,
        "consents",
        consent_body(
            p, recipient={"name": "General", "identifier": HOSPITAL}, categories=["demographics"], substance_use=False
        ),
    )
    hospital = await token_headers(
        anonymous,
        database,
        program,
        "hospital-app",
        "system/*.rs",
        organization=f"{HOSPITAL['system']}|{HOSPITAL['value']}",
    )
    pid = fhir_id(program.identifier_system, "participant", p)
    response = await anonymous.get(f"/fhir/Patient/{pid}", headers=hospital)
    assert response.status_code == 200, response.text
    now = datetime.now(UTC) + timedelta(seconds=1)
    start, end = disclosures.period(None, None, now)
    page = await disclosures.disclosure_page(database, program, p, start, end, None)
    assert page.participant_name == "Robin Example"
    [entry] = page.entries
    assert entry["recipient_client"] == "hospital-app" and entry["disclosed"] == "read: 1 Patient"
    with pytest.raises(NotFound):
        await disclosures.disclosure_page(database, program, "nobody", start, end, None)
    with pytest.raises(Exception, match="before"):
        disclosures.period("2026-01-02", "2025-01-01", now)
