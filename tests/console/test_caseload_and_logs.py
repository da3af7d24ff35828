"""A peer specialist's caseload (participants on care teams they belong to), the refusals around it,
and the logs: no password and no PHI in what the console's requests log."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
import structlog

from service.console.caseload import caseload, require_participant
from service.console.roles import Role
from service.console.security import ConsoleRefused, CurrentUser
from service.domain.errors import NotFound
from service.logs import configure_logging
from tests.console.conftest import csrf_of, make_user, sign_in, signed_in_as
from tests.factories import care_team_body, create, participant_body, specialist_body

FAMILY = "Quillfeather"


def _user(account, role: Role | None = None) -> CurrentUser:
    return CurrentUser(
        account.id, account.username, role or account.role, account.program_id, account.specialist_id, "t"
    )


async def _people(peer) -> dict[str, str]:
    ids = {
        "mine": (await create(peer, "specialists", specialist_body()))["id"],
        "other": (await create(peer, "specialists", specialist_body(name={"family": "Other", "given": ["Sam"]})))["id"],
        "p1": (await create(peer, "participants", participant_body()))["id"],
        "p2": (await create(peer, "participants", participant_body(identifiers=[])))["id"],
        "p3": (await create(peer, "participants", participant_body(identifiers=[])))["id"],
    }
    await create(peer, "care-team-members", care_team_body(ids["p1"], ids["mine"]))
    await create(peer, "care-team-members", care_team_body(ids["p2"], ids["other"]))
    ended = {"start": str(date.today() - timedelta(days=60)), "end": str(date.today() - timedelta(days=1))}
    await create(peer, "care-team-members", care_team_body(ids["p3"], ids["mine"], period=ended))
    return ids


async def test_a_peer_specialist_sees_only_their_caseload(peer, database, program):
    ids = await _people(peer)
    account = await make_user(database, program, "pat", Role.PEER_SPECIALIST, specialist_id=ids["mine"])
    user = _user(account)
    async with database.read() as conn:
        assert await caseload(conn, user) == frozenset({ids["p1"]})  # p3's membership has ended
        await require_participant(conn, user, ids["p1"])
        for other in (ids["p2"], ids["p3"]):
            with pytest.raises(ConsoleRefused) as refused:
                await require_participant(conn, user, other)
            assert refused.value.status == 403
        with pytest.raises(ConsoleRefused) as unknown:
            await require_participant(conn, user, "no-such-participant")
        assert unknown.value.status == 404


async def test_other_roles_see_the_program_and_the_integrator_no_one(peer, database, program):
    ids = await _people(peer)
    account = await make_user(database, program, "sue", Role.SUPERVISOR)
    async with database.read() as conn:
        for role in (Role.SUPERVISOR, Role.PROGRAM_ADMIN, Role.AUDITOR):
            assert await caseload(conn, _user(account, role)) is None
            await require_participant(conn, _user(account, role), ids["p2"])
        integrator = _user(account, Role.INTEGRATOR)
        assert await caseload(conn, integrator) == frozenset()
        with pytest.raises(ConsoleRefused) as refused:
            await require_participant(conn, integrator, ids["p1"])
        assert refused.value.status == 403 and "does not see participants" in refused.value.message


async def test_a_peer_specialist_account_names_a_specialist_of_the_program(database, program):
    from service.domain.errors import BadRequest

    with pytest.raises(BadRequest):
        await make_user(database, program, "pat", Role.PEER_SPECIALIST)
    with pytest.raises(NotFound):
        await make_user(database, program, "pat", Role.PEER_SPECIALIST, specialist_id="not-a-specialist")
    with pytest.raises(BadRequest):
        await make_user(database, program, "sue", Role.SUPERVISOR, specialist_id="not-a-specialist")


async def test_no_password_and_no_phi_in_the_logs(console, peer, database, program, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG", json=True)
    try:
        participant = (
            await create(peer, "participants", participant_body(name={"family": FAMILY, "given": ["Wren"]}))
        )["id"]
        await make_user(database, program, "ana", Role.PROGRAM_ADMIN)
        form = await console.get("/console/sign-in")
        wrong = "wrong-secret-passphrase-77"
        await console.post(
            "/console/sign-in", data={"username": "ana", "password": wrong, "csrf_token": csrf_of(form.text)}
        )
        await sign_in(console, "ana")
        page = await console.get("/console/integration/preview", params={"kind": "participant", "id": participant})
        assert page.status_code == 200 and FAMILY in page.text  # the page shows it ...
        await console.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
        await signed_in_as(console, database, program, Role.INTEGRATOR)
        await console.get("/console/integration/preview", params={"kind": "participant", "id": participant})
    finally:
        structlog.reset_defaults()
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "/console/integration/preview" in logged  # ... the request was logged ...
    for secret in (wrong, "correct horse battery staple", FAMILY, "Wren", "1990-04-01"):
        assert secret not in logged  # ... but neither the passwords nor the participant
