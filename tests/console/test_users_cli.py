"""`peerlink users ...` as an operator runs it: the real command in a subprocess against the test's database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from service.console import accounts
from service.store.tables import audit_log
from tests.console.conftest import sign_in

PEERLINK = str(Path(sys.executable).parent / "peerlink")
NEW_PASSWORD = "a brand new passphrase 42"


def _run(database, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEERLINK_DATABASE_URL": database.url.render_as_string(hide_password=False)}
    env["PEERLINK_DEFAULT_PROGRAM"] = "demo"
    return subprocess.run(
        [PEERLINK, "users", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
    )


async def _in_thread(database, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_run, database, *args, stdin=stdin)


async def test_add_list_disable_and_reset_password(console, database, program):
    added = await _in_thread(database, "add", "Admin", "--role", "program-admin", "--password-stdin", stdin="short\n")
    assert added.returncode == 2 and "at least 12 characters" in added.stderr
    added = await _in_thread(
        database, "add", "Admin", "--role", "program-admin", "--password-stdin", stdin="correct horse battery staple\n"
    )
    assert added.returncode == 0, added.stderr
    assert "console user admin added (program-admin)" in added.stdout
    await sign_in(console, "admin")
    again = await _in_thread(database, "add", "admin", "--role", "auditor", "--password-stdin", stdin="x" * 20 + "\n")
    assert again.returncode == 2 and "taken" in again.stderr
    wrong = await _in_thread(database, "add", "bo", "--role", "wizard", "--password-stdin", stdin="x" * 20 + "\n")
    assert wrong.returncode == 2 and "unknown role" in wrong.stderr
    peer = await _in_thread(database, "add", "pat", "--role", "peer-specialist", "--password-stdin", stdin="x" * 20)
    assert peer.returncode == 2 and "specialist" in peer.stderr

    listed = await _in_thread(database, "list")
    assert listed.returncode == 0 and listed.stdout.startswith("admin\tprogram-admin\tactive\t-\t20")

    disabled = await _in_thread(database, "disable", "admin")
    assert disabled.returncode == 0
    assert (await console.get("/console/")).status_code == 303  # the session ended with the account
    assert "\tdisabled\t" in (await _in_thread(database, "list")).stdout
    assert (await _in_thread(database, "enable", "admin")).returncode == 0

    reset = await _in_thread(database, "reset-password", "admin", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert reset.returncode == 0, reset.stderr
    await sign_in(console, "admin", NEW_PASSWORD)
    assert (
        await _in_thread(database, "reset-password", "nobody", "--password-stdin", stdin=NEW_PASSWORD)
    ).returncode == 2

    async with database.read() as conn:
        subtypes = [r.subtype for r in await conn.execute(select(audit_log).where(audit_log.c.client_id == "cli"))]
        account = await accounts.by_username(conn, "admin")
    assert subtypes == ["user-add", "user-disable", "user-enable", "user-reset-password"]
    assert account.password_hash is not None and account.password_hash.startswith("$argon2id$")
    for output in (added.stdout, reset.stdout, listed.stdout):
        assert NEW_PASSWORD not in output and "battery" not in output
