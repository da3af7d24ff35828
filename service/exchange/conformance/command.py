"""``peerlink check``: the command line of the EHR conformance check."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer


class Alg(StrEnum):
    RS384 = "RS384"
    ES384 = "ES384"


def check(
    ehr: Annotated[str, typer.Option(help="The EHR's FHIR base URL.")],
    client_id: Annotated[str, typer.Option(help="Our client id registered at the EHR.")],
    key: Annotated[Path, typer.Option(help="Our private key (PEM: RSA for RS384, EC P-384 for ES384).")],
    kid: Annotated[str | None, typer.Option(help="The key's kid (default: its RFC 7638 thumbprint).")] = None,
    alg: Annotated[Alg | None, typer.Option(help="Assertion algorithm (default: by key type).")] = None,
    scope: Annotated[str | None, typer.Option(help="Scopes to ask for (default: all registered).")] = None,
    write_test: Annotated[
        bool, typer.Option("--write-test", help="Create a test DocumentReference and clean it up.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Check an EHR against what PeerLink needs; exit 0 only when every check that ran passed."""
    from joserfc.errors import JoseError

    from service.auth.backend_client import private_key_file

    from . import CheckOptions, run_checks

    try:
        private_key = private_key_file(key, kid)
    except (OSError, ValueError, JoseError) as error:
        typer.echo(f"peerlink check: cannot load the key {key}: {error}", err=True)
        raise typer.Exit(2) from None
    options = CheckOptions(
        ehr=ehr,
        client_id=client_id,
        key=private_key,
        alg=alg.value if alg else None,
        scope=scope,
        write_test=write_test,
        timeout=timeout,
    )
    report = asyncio.run(run_checks(options))
    if json_output:
        typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(report.table())
    raise typer.Exit(0 if report.ok else 1)
