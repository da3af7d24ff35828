"""Transaction Bundles: POST Patient / ServiceRequest / Task and PUT Task/{id}, with the supporting
resources a clinic sends with a referral (POST or PUT Practitioner, PractitionerRole, Organization,
Condition, Goal, Consent, Coverage, Observation, QuestionnaireResponse, DocumentReference, RelatedPerson,
Immunization), processed in that order in one database transaction; fullUrls and Type/id references
resolve between entries. The supporting resources resolve the referral's requester, organisation and
reason and are kept as its clinical context (``context``). Batch is refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import clinical_context as context_map
from mappings import referral as referral_map
from mappings.context import MappingContext
from service.domain import Program
from service.domain.errors import BadRequest

from .context import Sent, assign, keep_context, mapping_view, referred_patient
from .errors import Where, bad_request, refused
from .lookups import source_of
from .outcomes import Outcome, TransactionOutcome, Written, written
from .patients import receive_patient
from .referrals import receive_referral
from .tasks import receive_task, update_task


@dataclass
class Entry:
    """One entry of a transaction Bundle, as checked; ``outcome`` once it has been processed."""

    index: int
    method: str
    resource: dict[str, Any]
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    target_id: str | None = None  # PUT Task/{id}
    outcome: Outcome | None = None

    @property
    def root(self) -> str:
        return f"Bundle.entry[{self.index}].resource"

    @property
    def resource_type(self) -> str:
        return str(self.resource.get("resourceType"))

    @property
    def names(self) -> list[str]:
        """The references that can name this entry: its fullUrl and Type/id."""
        return context_map.aliases(self.resource, self.full_url)

    @property
    def supporting(self) -> bool:
        return self.resource_type not in _REFERRAL_TYPES

    @property
    def focus(self) -> str | None:
        focus = self.resource.get("focus")
        reference = focus.get("reference") if isinstance(focus, dict) else None
        return reference if isinstance(reference, str) else None


_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')
_ACCEPTED = {("POST", "Patient"), ("POST", "ServiceRequest"), ("POST", "Task"), ("PUT", "Task")}
_REFERRAL_TYPES = ("Patient", "ServiceRequest", "Task")
_SUPPORTING_METHODS = ("POST", "PUT")


def _entry(index: int, entry: Any, urls: set[str]) -> Entry:
    at = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise bad_request(at, "must be an object")
    resource, request = entry.get("resource"), entry.get("request")
    if not isinstance(resource, dict):
        raise bad_request(f"{at}.resource", "required in a transaction (POST and PUT entries)")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        raise bad_request(f"{at}.request.method", "required")
    method, url = request["method"].upper(), request.get("url")
    resource_type = resource.get("resourceType")
    supporting = resource_type not in _REFERRAL_TYPES and method in _SUPPORTING_METHODS
    if (method, resource_type) not in _ACCEPTED and not supporting:
        raise bad_request(
            f"{at}.request.method",
            "a transaction here takes POST Patient, ServiceRequest or Task, PUT Task/{id}, and POST or "
            "PUT of the resources sent with a referral",
        )
    if supporting and resource_type not in context_map.KEPT_TYPES:
        kept = ", ".join(context_map.KEPT_TYPES)
        raise refused(
            f"{at}.resource", f"PeerLink does not keep {str(resource_type)[:40]} with a referral; it keeps {kept}"
        )
    if not isinstance(url, str) or not url:
        raise bad_request(f"{at}.request.url", "required")
    target_id = None
    if method == "POST" and url.split("?")[0].strip("/") != resource_type:
        raise bad_request(f"{at}.request.url", f"a create is posted to {resource_type}")
    if method == "PUT" and supporting:
        if url.split("?")[0].strip("/").split("/")[0] != resource_type:
            raise bad_request(f"{at}.request.url", f"an update is put to {resource_type}/{{id}}")
    elif method == "PUT":
        match = re.fullmatch(r"Task/([A-Za-z0-9\-.]{1,64})", url.strip("/"))
        if match is None:
            raise bad_request(f"{at}.request.url", "an update is put to Task/{id}")
        target_id = match.group(1)
    if_match = None
    if isinstance(request.get("ifMatch"), str):
        found = _ETAG.match(request["ifMatch"].strip())
        if found is None:
            raise bad_request(f"{at}.request.ifMatch", 'must be an ETag this server issued, such as W/"3"')
        if_match = int(found.group(1))
    full_url = entry.get("fullUrl")
    if full_url is not None:
        if not isinstance(full_url, str) or full_url in urls:
            raise bad_request(f"{at}.fullUrl", "must be a distinct string")
        urls.add(full_url)
    if_none_exist = request.get("ifNoneExist")
    if if_none_exist is not None and not isinstance(if_none_exist, str):
        raise bad_request(f"{at}.request.ifNoneExist", "must be a search query string")
    return Entry(index, method, resource, full_url, if_none_exist, if_match, target_id)


def entries_of(bundle: Any) -> list[Entry]:
    """The entries of a transaction Bundle, every one checked before anything is written."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("the body must be a Bundle")
    if bundle.get("type") == "batch":
        raise bad_request("Bundle.type", "batch is not supported; send a transaction")
    if bundle.get("type") != "transaction":
        raise bad_request("Bundle.type", "must be transaction")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise bad_request("Bundle.entry", "must be an array")
    urls: set[str] = set()
    return [_entry(index, entry, urls) for index, entry in enumerate(entries)]


def pair_tasks(entries: list[Entry]) -> dict[int, Entry]:
    """ServiceRequest entry index -> the Task posted with it (its focus is that entry's fullUrl)."""
    by_url = {name: e for e in entries for name in e.names}
    paired: dict[int, Entry] = {}
    for entry in entries:
        if entry.method == "POST" and entry.resource_type == "Task":
            focus = by_url.get(entry.focus or "")
            if focus is not None and focus.resource_type == "ServiceRequest" and focus.method == "POST":
                if focus.index in paired:
                    raise refused(f"{entry.root}.focus", "a second Task for the same ServiceRequest")
                paired[focus.index] = entry
    return paired


async def transaction(
    conn: AsyncConnection,
    program: Program,
    bundle: Any,
    *,
    permit: Callable[[str, str], None] | None = None,
    organization: str | None = None,
) -> TransactionOutcome:
    """A transaction Bundle, all or nothing (the caller's database transaction): every entry's
    outcome and the resource it left, in the order sent.

    ``permit(method, resource_type)`` is asked for every entry before anything is written; with an
    ``organization`` (the sender's data boundary) every written resource must lie inside it."""
    entries = entries_of(bundle)
    by_index = {e.index: e for e in entries}
    if permit is not None:
        for entry in entries:
            permit(entry.method, entry.resource_type)
    ctx = MappingContext(program)
    known: dict[str, str] = {}  # fullUrl or Type/id -> domain id
    served: dict[str, str] = {}  # fullUrl or Type/id -> Type/id PeerLink serves

    def remember(entry: Entry, domain_id: str) -> None:
        assert entry.outcome is not None
        for name in entry.names:
            known[name] = domain_id
            served[name] = f"{entry.outcome.resource_type}/{entry.outcome.resource_id}"

    for entry in (e for e in entries if e.resource_type == "Patient"):
        entry.outcome = await receive_patient(
            conn,
            program,
            entry.resource,
            if_none_exist=entry.if_none_exist,
            where=Where({"Patient": entry.root}),
            condition_element=f"Bundle.entry[{entry.index}].request.ifNoneExist",
        )
        source = await source_of(conn, program.id, "Patient", entry.outcome.resource_id)
        assert source is not None
        remember(entry, source)

    paired = pair_tasks(entries)
    requests = [e for e in entries if e.resource_type == "ServiceRequest"]
    sent = {e.index: Sent(e.index, e.resource, e.full_url) for e in entries if e.supporting}
    carried = assign(
        [(e.index, e.resource, t.resource if (t := paired.get(e.index)) else None) for e in requests],
        list(sent.values()),
    )
    for entry in requests:
        task = paired.get(entry.index)
        mine = carried.get(entry.index, [])
        entry.outcome = await receive_referral(
            conn,
            program,
            entry.resource,
            task=task.resource if task else None,
            if_none_exist=entry.if_none_exist,
            known=known,
            where=Where({"ServiceRequest": entry.root, **({"Task": task.root} if task else {})}),
            condition_element=f"Bundle.entry[{entry.index}].request.ifNoneExist",
            supporting=mapping_view(mine),
            organization=organization,
        )
        referral_id = await source_of(conn, program.id, "ServiceRequest", entry.outcome.resource_id)
        assert referral_id is not None
        remember(entry, referral_id)
        if task is not None:
            task_id = ctx.id_for(referral_map.TASK_KIND, referral_id)
            task.outcome = Outcome("Task", task_id, entry.outcome.created)
            remember(task, referral_id)
        if mine:
            patient = await referred_patient(conn, program, referral_id)
            subject = (entry.resource.get("subject") or {}).get("reference")
            aliases = {**served, **({subject: f"Patient/{patient}"} if isinstance(subject, str) else {})}
            outcomes = await keep_context(conn, program, referral_id, patient, entry.resource, mine, aliases)
            for item, outcome in zip(mine, outcomes, strict=True):
                by_index[item.index].outcome = outcome

    for entry in (e for e in entries if e.resource_type == "Task" and e.outcome is None):
        where = Where({"Task": entry.root})
        if entry.method == "POST":
            entry.outcome = await receive_task(conn, program, entry.resource, known=known, where=where)
        else:
            assert entry.target_id is not None
            entry.outcome = await update_task(
                conn, program, entry.target_id, entry.resource, expected_version=entry.if_match, where=where
            )

    done: list[Written] = []
    for entry in entries:
        assert entry.outcome is not None
        done.append(Written(entry.outcome, await written(conn, program.id, entry.outcome, organization)))
    return TransactionOutcome(tuple(done))
