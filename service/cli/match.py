"""`peerlink match`: ranked specialists for a referral with the reasons, and the batch proposal for the
open queue (the same answers as ``GET /peer/v1/referrals/{id}/matches`` and ``POST
/peer/v1/matching/plan``). Nothing is changed: a specialist is assigned through the peer API
(``POST /peer/v1/referrals/{id}/assign``), which records who assigned and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from service.cli.common import fail, with_open_database
from service.settings import get_settings

match_app = typer.Typer(help="Match referred participants to peer specialists (read-only).", no_args_is_help=True)
Program = Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _config() -> Any:
    from service.domain.matching.config import MatchingConfigError, load_config

    try:
        return load_config(get_settings().matching_dir)
    except MatchingConfigError as error:
        raise fail(f"matching configuration: {error}", 1) from None


@match_app.command("referral")
def referral(
    referral_id: Annotated[str, typer.Argument(help="The referral's id.")],
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many matches to print.")] = 5,
    program: Program = None,
    as_json: AsJson = False,
) -> None:
    """The specialists who meet every hard constraint for this referral, best first, with the reasons."""
    from service.records import matching
    from service.records.programs import get_by_code

    settings, config = get_settings(), _config()

    async def work(database: Any) -> Any:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
            return await matching.matches(conn, found, referral_id, config, datetime.now(UTC).date())

    _, ranking = with_open_database(settings, work, prefix="peerlink match")
    if as_json:
        typer.echo(json.dumps(ranking.model_dump(mode="json"), indent=2))
        return
    wanted = ", ".join(ranking.wanted_areas) or "none"
    typer.echo(f"referral {referral_id}: lived experience wanted: {wanted}")
    for match in ranking.matches[:limit]:
        typer.echo(f"{match.rank}. {match.specialist_name} ({match.specialist_id})  score {match.score:g}")
        for factor in match.factors:
            typer.echo(
                f"     {factor.factor:<16} {factor.points:>5g} = {factor.weight:g} x {factor.value:g}  {factor.text}"
            )
    if not ranking.matches:
        typer.echo("no specialist meets every hard constraint")
    for excluded in ranking.excluded:
        typer.echo(f"-  {excluded.specialist_name} ({excluded.specialist_id}): {'; '.join(excluded.reasons)}")


@match_app.command("plan")
def plan(program: Program = None, as_json: AsJson = False) -> None:
    """A proposal for the open queue (requested or received, no specialist): the batch plan that
    maximises the total score within free slots, beside greedy assignment. Nothing changes."""
    from service.records import matching
    from service.records.programs import get_by_code

    settings, config = get_settings(), _config()

    async def work(database: Any) -> Any:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
            return await matching.plan(conn, found, config, datetime.now(UTC).date())

    batch, greedy = with_open_database(settings, work, prefix="peerlink match")
    if as_json:
        out = {
            p.method: {
                "total_score": p.total_score,
                "assignments": [vars(a) for a in p.assignments],
                "unassigned": p.unassigned,
            }
            for p in (batch, greedy)
        }
        typer.echo(json.dumps({"proposal": True, **out}, indent=2))
        return
    queue = len(batch.assignments) + len(batch.unassigned)
    typer.echo(f"open queue: {queue} referrals (a proposal: nothing is assigned until confirmed through the API)")
    for p in (batch, greedy):
        typer.echo(f"{p.method:<7} {len(p.assignments)} assigned, total score {p.total_score:g}")
    for a in batch.assignments:
        typer.echo(f"  referral {a.referral_id} -> specialist {a.specialist_id}  score {a.score:g}")
    for referral_id in batch.unassigned:
        typer.echo(f"  referral {referral_id}: no specialist with a free slot meets its hard constraints")
