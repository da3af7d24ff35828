"""The peer program: the tenant every record belongs to."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .common import Address, ContactPoint, DomainModel, Npi, ShortText, Uri, VersionMeta

Taxonomy = Annotated[str, Field(pattern=r"^[0-9]{3}[0-9A-Z]{6}X$", description="A NUCC provider taxonomy code.")]
TaxId = Annotated[str, Field(pattern=r"^[0-9]{9}$", description="The employer identification number (EIN), 9 digits.")]


class ProgramFields(DomainModel):
    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,39}$")] = Field(
        description="Short slug naming the program in URLs and headers."
    )
    name: ShortText
    identifier_system: Uri = Field(
        description="URI under which the program issues identifiers; seeds deterministic FHIR ids."
    )
    npi: Npi | None = Field(default=None, description="The billing provider's NPI (claims: 837P loop 2010AA).")
    telecom: list[ContactPoint] = Field(default_factory=list, max_length=10)
    taxonomy: Taxonomy | None = Field(default=None, description="The billing provider's taxonomy (PRV*BI).")
    tax_id: TaxId | None = Field(default=None, description="The billing provider's EIN (REF*EI on claims).")
    address: Address | None = Field(
        default=None, description="The billing provider's street address; a claim needs a line, city, state and ZIP+4."
    )


class BillingProviderFields(DomainModel):
    """The billing fields of a program an administrator may change (PATCH /admin/v1/program)."""

    npi: Npi | None = None
    taxonomy: Taxonomy | None = None
    tax_id: TaxId | None = None
    address: Address | None = None


class Program(ProgramFields, VersionMeta):
    pass
