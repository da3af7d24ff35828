"""Per-EHR overlays as data: profile URLs for meta.profile, identifier systems, elements a target
rejects. ``load_overlay(name)`` reads ``<name>.toml`` into a typed Overlay and refuses it when wrong."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).parent


class OverlayError(ValueError):
    pass


class Overlay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    profiles: dict[str, list[str]] = Field(description="resourceType -> canonical URLs claimed in meta.profile")
    omit: dict[str, list[str]] = Field(
        default_factory=dict, description="resourceType -> top-level elements this EHR rejects (dropped)"
    )
    note_type: str = Field(default="progress_note", description="Name of the note-type code in note.toml.")
    mrn_system: str | None = Field(default=None, description="Identifier system of this EHR's MRNs.")
    targets: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Resource.element -> resource types a reference there may point at, where the claimed "
        "profile version narrows what the base resource allows (absent: every type the mapping can send)",
    )

    def allows(self, element: str, resource_type: str) -> bool:
        """Whether this overlay's profiles let ``element`` reference a ``resource_type``."""
        allowed = self.targets.get(element)
        return allowed is None or resource_type in allowed


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.toml"))


@cache
def load_overlay(name: str = "generic") -> Overlay:
    path = HERE / f"{name}.toml"
    if not path.exists():
        raise OverlayError(f"no overlay {name!r}; known: {', '.join(names())}")
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    try:
        return Overlay.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise OverlayError(f"overlay {name}.toml is wrong: {problems}") from None
