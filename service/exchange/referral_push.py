"""A referral's progress onto the clinic's Task at the EHR: the sessions and outcome scores the Task
lists as outputs go first (those the participant's consent lets this EHR have), then the Task update itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.domain import Program
from service.fhir.render import fhir_resources
from service.settings import Settings
from service.store import Database
from service.store.tables import ehr_referrals

from . import outbox
from .collect import collect, output_of
from .connections import EhrConnection
from .endpoints import Endpoints
from .holdings import held
from .outcomes import Outcomes
from .outgoing import PRIMARY_TYPES, Delivered, Outgoing, in_order
from .send import Route, capabilities_of, send
from .smart_client import SmartClient
from .task_update import update_task


class ReferralPush:
    def __init__(self, database: Database, settings: Settings, endpoints: Endpoints, outcomes: Outcomes) -> None:
        self._database = database
        self._settings = settings
        self._endpoints = endpoints
        self._outcomes = outcomes

    async def push(
        self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed, route: Route
    ) -> Delivered | None:
        """What was sent; None when the EHR has no Task of the referral (the change is withheld)."""
        async with self._database.read() as conn:
            program = await self._endpoints.program(conn, row.program_id)
            r = ehr_referrals.c
            task_id = (
                await conn.execute(
                    select(r.task_id).where(r.connection == connection.name, r.referral_id == row.record_id).limit(1)
                )
            ).scalar()
            resources = await fhir_resources(conn, program, "referral", row.record_id, connection.profile)
        if task_id is None:
            await self._outcomes.withhold([row])
            return None
        ours = next(res for res in resources if res["resourceType"] == "Task")
        ours, sent = await self._with_outputs(connection, client, program, ours, route)
        await self._endpoints.wait_turn(connection.name)
        await update_task(client, task_id, ours)
        return sent

    async def _with_outputs(
        self, connection: EhrConnection, client: SmartClient, program: Program, task: dict[str, Any], route: Route
    ) -> tuple[dict[str, Any], Delivered]:
        """The sessions and outcome scores a Task lists as outputs must exist at the EHR before the Task
        points at them: those the participant's consent lets this EHR have (encounters; assessments,
        with the QuestionnaireResponse and the other Observations of the assessment) and of types the
        EHR takes writes of are sent first; the others are left out of the Task."""
        kept: list[dict[str, Any]] = []
        outgoing: dict[str, Outgoing] = {}
        outputs = task.get("output") or []
        takes = await capabilities_of(client) if any("valueReference" in o for o in outputs) else None
        async with self._database.read() as conn:
            for output in outputs:
                reference = (output.get("valueReference") or {}).get("reference") or ""
                if "valueReference" not in output:
                    kept.append(output)
                    continue
                source = await output_of(conn, program.id, reference)
                if source is None or takes is None:
                    continue
                kind, record_id, participant_id = source
                if any(takes.method(t) is None for t in PRIMARY_TYPES[kind]):
                    continue  # an EHR that takes no writes of the type: the Task does not point at it
                if not await outbox.may_send(conn, program, connection, kind, record_id, participant_id):
                    continue
                kept.append(output)
                for item in await collect(conn, program, connection, kind, record_id):
                    outgoing.setdefault(item.reference, item)
            ordered = in_order(outgoing.values())
            holding = await held(conn, connection.name, [o.reference for o in ordered])
        sent = await send(client, ordered, holding, route) if ordered else Delivered()
        trimmed = {**task, "output": kept} if kept else {k: v for k, v in task.items() if k != "output"}
        return trimmed, sent
