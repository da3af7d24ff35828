"""Create, read, update and list for one record type, generated from its RecordType."""

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep, etag
from service.domain import Program
from service.records import operations
from service.records.types import ALL, RecordType
from service.store.repository import Range


def page_model(rtype: RecordType[Any]) -> type[BaseModel]:
    item: Any = rtype.stored.model
    model: type[BaseModel] = create_model(
        f"{rtype.stored.model.__name__}Page",
        items=(list[item], ...),
        next_cursor=(str | None, Field(default=None, description="Pass as ?cursor= for the next page.")),
        next=(str | None, Field(default=None, description="URL of the next page, when there is one.")),
    )
    return model


def filter_model(rtype: RecordType[Any]) -> type[BaseModel]:
    record_fields = rtype.stored.model.model_fields
    fields: dict[str, Any] = {
        name: (Optional[record_fields[name].annotation], None)  # noqa: UP045 - annotation is a runtime value
        for name in rtype.filters
    }
    if rtype.time_filter:
        fields[f"{rtype.time_filter}_from"] = (
            AwareDatetime | None,
            Field(default=None, description="Inclusive."),
        )
        fields[f"{rtype.time_filter}_before"] = (
            AwareDatetime | None,
            Field(default=None, description="Exclusive."),
        )
    fields["limit"] = (int, Field(default=50, ge=1, le=500, description="Page size."))
    fields["cursor"] = (str | None, Field(default=None, max_length=200, description="From next_cursor."))
    model: type[BaseModel] = create_model(
        f"{rtype.stored.model.__name__}Filters", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


async def changed(
    conn: Any, request: Request, access: Access, program: Program, record: Any, subtype: str, action: str
) -> None:
    """The change's audit record, last in its transaction."""
    stored = next(r for r in ALL if isinstance(record, r.stored.model))
    patient, reference = await audit_trail.peer_subject(conn, program, stored.stored.name, record)
    await audit_trail.changing(
        conn, request, access, program.id, subtype, action, patients=[patient], entities=[reference]
    )


def record_router(rtype: RecordType[Any]) -> APIRouter:
    """Routes for ``rtype``; the local classes below are what FastAPI validates and documents."""
    Record: Any = rtype.stored.model
    Fields: Any = rtype.fields
    Patch: Any = rtype.patch
    Filters: Any = filter_model(rtype)
    PageOf: Any = page_model(rtype)
    label, path = rtype.stored.label, rtype.path
    router = APIRouter(prefix=f"/{path}", tags=[label])

    def located(response: Response, record: Any) -> Any:
        response.headers["ETag"] = etag(record.version)
        response.headers["Location"] = f"/peer/v1/{path}/{record.id}"
        return record

    @router.post(
        "",
        status_code=201,
        response_model=Record,
        summary=f"Create a {label}",
        operation_id=f"create_{rtype.stored.name}",
    )
    async def create(
        request: Request,
        body: Annotated[Fields, Body()],
        program: ProgramDep,
        access: AccessDep,
        database: DatabaseDep,
        response: Response,
    ) -> Any:
        async with database.transaction() as conn:
            record = await operations.create(conn, program.id, rtype, body)
            await changed(conn, request, access, program, record, "peer-create", "C")
        return located(response, record)

    @router.get(
        "/{record_id}",
        response_model=Record,
        summary=f"Read a {label}",
        operation_id=f"read_{rtype.stored.name}",
    )
    async def read(
        request: Request,
        record_id: str,
        program: ProgramDep,
        access: AccessDep,
        database: DatabaseDep,
        response: Response,
    ) -> Any:
        async with database.read() as conn:
            record = await rtype.repository.get(conn, program.id, record_id)
            patient, reference = await audit_trail.peer_subject(conn, program, rtype.stored.name, record)
        await audit_trail.reading(request, access, program.id, "peer-read", patients=[patient], entities=[reference])
        return located(response, record)

    @router.patch(
        "/{record_id}",
        response_model=Record,
        summary=f"Change a {label}",
        operation_id=f"update_{rtype.stored.name}",
    )
    async def change(
        request: Request,
        record_id: str,
        body: Annotated[Patch, Body()],
        program: ProgramDep,
        access: AccessDep,
        database: DatabaseDep,
        expected_version: IfMatchDep,
        response: Response,
    ) -> Any:
        changes = body.model_dump(mode="json", exclude_unset=True)
        async with database.transaction() as conn:
            record = await operations.update(
                conn, program.id, rtype, record_id, changes, expected_version=expected_version
            )
            await changed(conn, request, access, program, record, "peer-update", "U")
        return located(response, record)

    @router.get(
        "",
        response_model=PageOf,
        summary=f"List {path.replace('-', ' ')}",
        operation_id=f"list_{rtype.stored.name}",
    )
    async def list_records(
        request: Request,
        filters: Annotated[Filters, Query()],
        program: ProgramDep,
        access: AccessDep,
        database: DatabaseDep,
    ) -> Any:
        values = filters.model_dump(exclude={"limit", "cursor"})
        ranges = {}
        if rtype.time_filter:
            low = values.pop(f"{rtype.time_filter}_from")
            high = values.pop(f"{rtype.time_filter}_before")
            ranges[rtype.time_filter] = Range(low, high)
        async with database.read() as conn:
            page = await rtype.repository.list(
                conn, program.id, equals=values, ranges=ranges, limit=filters.limit, cursor=filters.cursor
            )
            subjects = [await audit_trail.peer_subject(conn, program, rtype.stored.name, r) for r in page.items]
        await audit_trail.reading(
            request,
            access,
            program.id,
            "peer-list",
            patients=[patient for patient, _ in subjects],
            entities=[reference for _, reference in subjects],
            query=request.url.query or None,
        )
        next_url = None
        if page.next_cursor:
            next_url = str(request.url.include_query_params(cursor=page.next_cursor))
        return PageOf(items=page.items, next_cursor=page.next_cursor, next=next_url)

    return router
