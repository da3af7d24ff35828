"""The `peerlink` command: the Typer app, assembled from one module per command group (shared helpers
in service.cli.common). The console script is ``peerlink = "service.cli:app"``."""

from __future__ import annotations

import typer

from service.cli.audit import audit_app
from service.cli.auth import clients_app, keys_app, token
from service.cli.claims import claims_app
from service.cli.exchange import ehr_app
from service.cli.gateway import migrate, seed, serve
from service.cli.imports import import_file, import_template
from service.cli.match import match_app
from service.cli.outbox import deadletters_app, worker
from service.cli.preview import map_record, openapi
from service.cli.report import report_app
from service.cli.up import up
from service.cli.users import users_app
from service.exchange.conformance.command import check
from service.sandbox.cli import sandbox_app

app = typer.Typer(help="PeerLink: FHIR integration gateway for peer-support programs.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.command("token")(token)
app.add_typer(ehr_app, name="ehr")
app.add_typer(deadletters_app, name="deadletters")
app.command("worker")(worker)
app.add_typer(sandbox_app, name="sandbox")
app.command("check")(check)
app.command("up")(up)
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
app.add_typer(claims_app, name="claims")
app.add_typer(match_app, name="match")
app.command("migrate")(migrate)
app.command("seed")(seed)
app.command("serve")(serve)
app.command("map")(map_record)
app.command("openapi")(openapi)
app.add_typer(users_app, name="users")
app.command("import")(import_file)
app.command("import-template")(import_template)

__all__ = ["app"]
