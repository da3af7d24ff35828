"""The peer program: the tenant every record belongs to."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .common import ContactPoint, DomainModel, Npi, ShortText, Uri, VersionMeta


class ProgramFields(DomainModel):
    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,39}$")] = Field(
        description="Short slug naming the program in URLs and headers."
    )
    name: ShortText
    identifier_system: Uri = Field(
        description="URI under which the program issues identifiers; seeds deterministic FHIR ids."
    )
    npi: Npi | None = None
    telecom: list[ContactPoint] = Field(default_factory=list, max_length=10)


class Program(ProgramFields, VersionMeta):
    pass
