"""What the program screens gather, on records made through the records use cases: participant
listings, the referral inbox with its match suggestions and accept/reject steps, the timeline (notes
only when asked for), the outcome chart, claim readiness and the accounting of disclosures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mappings.ids import fhir_id
from service.console.program import chart, claims, disclosures, inbox, participants, timeline
from service.domain.billing import load_payers
from service.domain.errors import BadRequest, IllegalTransition, NotFound, PreconditionFailed, RuleViolation
from service.domain.instruments import load_registry
from service.domain.matching.config import load_config
from service.domain.referral import ReferralStatus
from service.records.assessments import Series
from tests.auth_support import fetch_token
from tests.conftest import register_client
from tests.console import program_world
from tests.console.conftest import CONSOLE_URL
from tests.factories import TODAY


@pytest.fixture
async def world(database, program):
    return await program_world.build(database, program)


async def test_participant_listing_all_or_some(database, program, world):
    async with database.read() as conn:
        page = await participants.listing(conn, program.id, only={world.other_participant})
        assert [p.id for p in page.items] == [world.other_participant] and page.next_cursor is None
        everyone = await participants.listing(conn, program.id, only=None)
        assert {p.id for p in everyone.items} == {world.participant, world.other_participant}
        assert (await participants.listing(conn, program.id, only=set())).items == []
        with pytest.raises(BadRequest):
            await participants.listing(conn, program.id, only=None, cursor="not-ours")


async def test_inbox_accept_through_matching(database, program, world):
    config = load_config()
    now = datetime.now(UTC)
    async with database.read() as conn:
        items = await inbox.inbox(conn, program.id)
        assert [i.referral.id for i in items] == [world.referral]
        assert items[0].participant == "Robin Example"
        review = await inbox.review(conn, program, world.referral, config, TODAY)
    assert review.open and review.referral.status is ReferralStatus.REQUESTED
    assert {m.specialist_id for m in review.ranking.matches} == {world.specialist, world.other_specialist}
    args: dict[str, Any] = {"reason": "fits", "by": "admin@test", "config": config, "now": now}
    version = review.referral.version + 1
    async with database.transaction() as conn:
        with pytest.raises(PreconditionFailed):
            await inbox.accept(conn, program, world.referral, world.specialist, expected_version=version, **args)
    async with database.transaction() as conn:
        done = await inbox.accept(
            conn, program, world.referral, world.specialist, expected_version=review.referral.version, **args
        )
    assert done.referral.status is ReferralStatus.ACCEPTED
    assert [t.action.value for t in done.referral.transitions] == ["receive", "accept"]
    assert done.referral.match is not None and done.referral.assigned_specialist_id == world.specialist
    async with database.read() as conn:
        assert await inbox.inbox(conn, program.id) == []
        assert not (await inbox.review(conn, program, world.referral, config, TODAY)).open
    async with database.transaction() as conn:
        with pytest.raises(IllegalTransition):
            await inbox.reject(
                conn, program.id, world.referral, reason="no", by="a", expected_version=done.referral.version, now=now
            )


async def test_inbox_reject_needs_a_reason(database, program, world):
    async with database.read() as conn:
        version = (await inbox.inbox(conn, program.id))[0].referral.version
    now = datetime.now(UTC)
    for reason in ("", "   ", "x" * 2001):
        async with database.transaction() as conn:
            with pytest.raises(RuleViolation):
                await inbox.reject(
                    conn, program.id, world.referral, reason=reason, by="a", expected_version=version, now=now
                )
    async with database.transaction() as conn:
        rejected = await inbox.reject(
            conn, program.id, world.referral, reason="outside our area", by="a", expected_version=version, now=now
        )
    assert rejected.status is ReferralStatus.REJECTED
    assert rejected.transitions[-1].reason == "outside our area"
    async with database.read() as conn:
        with pytest.raises(NotFound):
            await inbox.review(conn, program, "no-such-referral", load_config(), TODAY)


async def test_timeline_withholds_notes_unless_asked(database, program, world):
    registry = load_registry()
    async with database.read() as conn:
        full = await timeline.timeline(conn, program.id, world.participant, registry, notes=True)
        bare = await timeline.timeline(conn, program.id, world.participant, registry, notes=False)
    kinds = [e.kind for e in full.entries]
    assert sorted(kinds) == ["assessment", "assessment", "referral", "session"]
    assert [e.at for e in full.entries] == sorted((e.at for e in full.entries), reverse=True)
    session = next(e for e in full.entries if isinstance(e, timeline.SessionEntry))
    assert [n.id for n in session.notes] == [world.note] and session.specialist == "Pat Peer"
    assert session.notes[0].text == program_world.NOTE_TEXT
    assert all(not e.notes for e in bare.entries if isinstance(e, timeline.SessionEntry)) and not bare.notes_shown
    [series] = full.series
    assert [pt.assessment.total for pt in series.points] == [21, 7]
    svg = str(chart.outcome_svg(series, "gad"))
    assert svg.count("<circle") == 2 and "<polyline" in svg and 'aria-labelledby="gad-title gad-desc"' in svg
    assert "baseline 21" in chart.describe(series) and "latest 7" in chart.describe(series)
    async with database.read() as conn:
        with pytest.raises(NotFound):
            await timeline.timeline(conn, program.id, "nobody", registry, notes=False)


def test_every_change_kind_has_words():
    from service.console.program.pages_participants import CHANGE_WORDS
    from service.domain.assessment import ChangeKind

    assert set(CHANGE_WORDS) == set(ChangeKind)


async def test_chart_escapes_and_draws_a_single_point(database, program, world):
    async with database.read() as conn:
        found = await timeline.timeline(conn, program.id, world.participant, load_registry(), notes=False)
    [series] = found.series
    one = Series(series.instrument, series.points[:1])
    svg = str(chart.outcome_svg(one, "one"))
    assert svg.count("<circle") == 1 and "<polyline" not in svg
    odd = Series(series.instrument.model_copy(update={"title": "A & <B>"}), series.points)
    drawn = str(chart.outcome_svg(odd, "odd"))
    assert "A &amp; &lt;B&gt;" in drawn and "<B>" not in drawn


async def test_claim_readiness_names_and_reasons(database, program, world):
    async with database.read() as conn:
        view = await claims.readiness(conn, program, load_payers(), TODAY - timedelta(days=30), TODAY, None)
        with pytest.raises(BadRequest):
            await claims.readiness(conn, program, load_payers(), TODAY, TODAY - timedelta(days=1), None)
    assert [line.session_id for line in view.lines] == [world.encounter]
    assert view.participants == {world.participant: "Robin Example"}
    assert view.specialists == {world.specialist: "Pat Peer"}
    assert view.blocked == 1 and view.ready == 0  # the note is a draft, no coverage, no accepted referral
    assert "note-unsigned" in {r.code for r in view.reasons}
    assert all(r.count == 1 and r.example for r in view.reasons)
    assert claims.default_period(TODAY) == (TODAY - timedelta(days=30), TODAY)


async def test_disclosures_of_a_real_read(console, database, program, world):
    key = await register_client(
        database, program, "hospital-app", "system/*.rs", organization=program_world.HOSPITAL_ORG
    )
    token = await fetch_token(console, key, "hospital-app", f"{CONSOLE_URL}/auth/token")
    pid = fhir_id(program.identifier_system, "participant", world.participant)
    response = await console.get(f"/fhir/Patient/{pid}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    now = datetime.now(UTC) + timedelta(seconds=1)
    start, end = disclosures.period(None, None, now)
    page = await disclosures.disclosure_page(database, program, world.participant, start, end, None)
    assert page.participant_name == "Robin Example" and page.program_name == program.name
    assert page.recipients == {program_world.HOSPITAL_ORG: "General Hospital"}
    [entry] = page.entries
    assert entry["recipient_client"] == "hospital-app" and entry["disclosed"] == "read: 1 Patient"
    other = await disclosures.disclosure_page(database, program, world.other_participant, start, end, None)
    assert other.entries == []
    with pytest.raises(NotFound):
        await disclosures.disclosure_page(database, program, "nobody", start, end, None)
    with pytest.raises(BadRequest, match="before"):
        disclosures.period("2026-01-02", "2025-01-01", now)
