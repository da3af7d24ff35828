"""``peerlink check`` against sandboxes in process: a conforming EHR passes every row, deficient ones
fail the rows they should, with reasons."""

from __future__ import annotations

from joserfc.jwk import ECKey
from typer.testing import CliRunner

from service.auth.backend_client import load_private_key
from service.exchange.conformance import (
    CAPABILITY,
    CLEANUP,
    CONDITIONAL,
    DISCOVERY,
    NEEDS,
    ROUND_TRIP,
    TOKEN,
    TOKEN_ENDPOINT,
    TRANSACTION,
    WRITE,
    CheckOptions,
    CheckReport,
    Status,
    run_checks,
)
from service.sandbox import Knobs, Personality
from service.sandbox.cli import command_line
from tests.auth_support import ec_key, rsa_key
from tests.sandbox.support import ROOT, pem

ROWS = [DISCOVERY, CAPABILITY, TOKEN_ENDPOINT, *(n.name for n in NEEDS), TRANSACTION, CONDITIONAL, TOKEN, ROUND_TRIP]


async def check(ehr, *, client_id="peerlink", key=None, **options) -> CheckReport:
    key = key or load_private_key(pem(rsa_key()), rsa_key().kid)
    report = await run_checks(CheckOptions(ehr=ROOT + ehr.fhir, client_id=client_id, key=key, **options), ehr.transport)
    assert sorted(r.name for r in report.results) == sorted([*ROWS, WRITE, CLEANUP])
    return report


def reasons(report: CheckReport) -> dict[str, tuple[Status, str]]:
    return {r.name: (r.status, r.reason) for r in report.results}


async def test_a_conforming_sandbox_passes_every_row(ehr):
    ehr.register()
    report = await check(ehr, write_test=True)
    assert [r for r in report.results if r.status is not Status.PASS] == []
    assert report.ok
    rows = reasons(report)
    assert "deleted DocumentReference/" in rows[CLEANUP][1]
    assert "RS384" in rows[TOKEN][1]
    assert ehr.sandbox.store.counts()["DocumentReference"] == 0
    assert ehr.sandbox.store.counts()["Patient"] == 50


async def test_without_write_test_the_write_rows_are_skipped(ehr):
    ehr.register()
    report = await check(ehr)
    assert report.status_of(WRITE) is Status.SKIP and report.status_of(CLEANUP) is Status.SKIP
    assert report.ok
    assert ehr.sandbox.store.counts()["DocumentReference"] == 0


async def test_a_deficient_sandbox_fails_the_right_rows(make_sandbox):
    ehr = make_sandbox(deficient=True)
    ehr.register()
    report = await check(ehr, write_test=True)
    rows = reasons(report)
    failed = {name for name, (status, _) in rows.items() if status is Status.FAIL}
    assert failed == {DISCOVERY, TRANSACTION, CONDITIONAL, "Task: search by owner and _lastUpdated, update"}
    assert "404" in rows[DISCOVERY][1]
    assert rows[TOKEN_ENDPOINT] == (Status.PASS, f"{ROOT}/auth/token from the CapabilityStatement's oauth-uris")
    assert "search parameter owner" in rows["Task: search by owner and _lastUpdated, update"][1]
    assert "search parameter _lastUpdated" in rows["Task: search by owner and _lastUpdated, update"][1]
    assert "conditionalCreate is not true for Encounter, DocumentReference" in rows[CONDITIONAL][1]
    assert rows[TOKEN][0] is Status.PASS and rows[WRITE][0] is Status.PASS
    assert not report.ok


async def test_the_epic_like_sandbox(make_sandbox):
    ehr = make_sandbox(personality=Personality.EPIC)
    ehr.register()
    report = await check(ehr, write_test=True)
    rows = reasons(report)
    failed = {name for name, (status, _) in rows.items() if status is Status.FAIL}
    assert failed == {"Encounter: create or update", "CareTeam: update"}
    assert rows["Encounter: create or update"][1] == "Encounter lacks create or update"
    assert rows[CONDITIONAL] == (Status.PASS, "conditionalCreate on DocumentReference")
    assert "entered-in-error" in rows[CLEANUP][1]
    note = ehr.sandbox.store.live("DocumentReference")[0].resource
    assert note["status"] == "entered-in-error"


async def test_the_oracle_like_sandbox_passes(make_sandbox):
    ehr = make_sandbox(personality=Personality.ORACLE)
    ehr.register()
    report = await check(ehr, write_test=True)
    assert report.ok, report.table()
    assert "entered-in-error" in reasons(report)[CLEANUP][1]


async def test_es384_assertions(make_sandbox):
    key = ECKey.import_key(pem(ec_key()), parameters={"kid": ec_key().kid})
    generic = make_sandbox()
    generic.register("es-client", key=ec_key())
    assert (await check(generic, client_id="es-client", key=key)).ok
    epic = make_sandbox(personality=Personality.EPIC)
    epic.register("es-client", key=ec_key())
    rows = reasons(await check(epic, client_id="es-client", key=key))
    assert rows[DISCOVERY][0] is Status.FAIL and "our key signs ES384" in rows[DISCOVERY][1]
    assert rows[TOKEN][0] is Status.FAIL and "RS384" in rows[TOKEN][1]


async def test_an_unregistered_client(ehr):
    report = await check(ehr, client_id="nobody", write_test=True)
    rows = reasons(report)
    assert rows[TOKEN][0] is Status.FAIL and "invalid_client" in rows[TOKEN][1]
    assert rows[ROUND_TRIP] == (Status.SKIP, "no access token")
    assert rows[WRITE] == (Status.SKIP, "no access token")
    assert not report.ok


async def test_narrow_scopes_fail_the_write_test(ehr):
    ehr.register("reader", "system/*.rs")
    report = await check(ehr, client_id="reader", write_test=True)
    rows = reasons(report)
    assert rows[WRITE][0] is Status.FAIL and "403" in rows[WRITE][1]
    assert rows[CLEANUP][0] is Status.SKIP


async def test_an_ehr_that_answers_errors(make_sandbox):
    ehr = make_sandbox(knobs=Knobs(error_rate=1.0))
    ehr.register()
    rows = reasons(await check(ehr))
    assert rows[CAPABILITY][0] is Status.FAIL and "HTTP 5" in rows[CAPABILITY][1]
    assert rows["Patient: read, search by identifier"] == (Status.FAIL, "no CapabilityStatement to read it from")
    assert rows[DISCOVERY][0] is Status.FAIL  # served under the FHIR base, so faulty too
    assert rows[TOKEN_ENDPOINT][0] is Status.FAIL
    assert rows[TOKEN] == (Status.SKIP, "no token endpoint known")
    assert rows[ROUND_TRIP][0] is Status.SKIP


async def test_the_table(ehr):
    ehr.register()
    report = await check(ehr)
    lines = report.table().splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "REASON"]
    assert lines[1].startswith(DISCOVERY) and " PASS " in lines[1]
    assert lines[-1] == f"{ROOT}/fhir: {len(ROWS)} passed, 0 failed, 2 skipped"
    assert report.as_dict()["ok"] is True


def test_check_command_refuses_an_unreadable_key(tmp_path):
    args = ["check", "--ehr", "http://127.0.0.1:9/fhir", "--client-id", "x", "--key", str(tmp_path / "none.pem")]
    result = CliRunner().invoke(command_line(), args)
    assert result.exit_code == 2
    assert "cannot load the key" in result.output


def test_check_command_loads_an_ec_key(tmp_path):
    path = tmp_path / "ec.pem"
    path.write_bytes(pem(ec_key()))
    key = load_private_key(path.read_bytes())
    assert key.key_type == "EC" and key.is_private and key.kid
