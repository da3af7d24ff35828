"""The matching data files, loaded once and checked: factor weights (program configuration) and the
reason-code -> lived-experience table. A wrong file raises :class:`MatchingConfigError` at start."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..match_fields import LivedExperience

HERE = Path(__file__).parent
FACTORS = ("lived_experience", "language", "continuity", "preferences", "availability", "capacity")
"""The soft factors, in the order explanations list them."""
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"

Text = Annotated[str, Field(min_length=1, max_length=2000)]
Weight = Annotated[float, Field(ge=0, le=100)]


class MatchingConfigError(ValueError):
    """A matching data file is missing, malformed or breaks a rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """How much each soft factor counts; a factor's points are its weight times its value (0 to 1)."""

    lived_experience: Weight
    language: Weight
    continuity: Weight
    preferences: Weight
    availability: Weight
    capacity: Weight

    def of(self, factor: str) -> float:
        value: float = getattr(self, factor)
        return value

    def as_tuple(self) -> tuple[float, ...]:
        return tuple(self.of(f) for f in FACTORS)


class WeightsFile(_Strict):
    source: Text
    why: Text
    weights: Weights


class AreaRule(_Strict):
    system: Annotated[str, Field(pattern=r"^(http://hl7\.org/fhir/sid/icd-10-cm|http://snomed\.info/sct)$")]
    prefix: Annotated[str, Field(pattern=r"^[A-Z][0-9A-Z]{0,6}$")] | None = None
    code: Annotated[str, Field(pattern=r"^[0-9]{6,18}$")] | None = None
    area: LivedExperience
    display: Text
    source: Text
    why: Text

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.prefix is None) == (self.code is None):
            raise ValueError("a rule has either a prefix (ICD-10-CM) or a code (SNOMED CT)")
        if self.prefix is not None and self.system != ICD10CM:
            raise ValueError("prefix rules are for ICD-10-CM")
        if self.code is not None and self.system != SNOMED:
            raise ValueError("code rules are for SNOMED CT")
        return self

    def matches(self, system: str | None, code: str) -> bool:
        if system != self.system:
            return False
        if self.prefix is not None:
            return code.replace(".", "").upper().startswith(self.prefix)
        return code == self.code


class Derived(_Strict):
    co_occurring_when: list[LivedExperience] = Field(min_length=2, max_length=2)
    youth_max_age: int = Field(ge=12, le=40)
    source: Text
    why: Text


class AreasFile(_Strict):
    source: Text
    why: Text
    derived: Derived
    rule: list[AreaRule] = Field(min_length=1)


@dataclass(frozen=True)
class MatchingConfig:
    weights: Weights
    """The defaults (``weights.toml``, or ``weights.toml`` in the program's folder)."""
    areas: AreasFile
    program_weights: dict[str, Weights] = field(default_factory=dict)
    """Per program code: ``weights-<code>.toml`` in PEERLINK_MATCHING_DIR."""

    def weights_for(self, program_code: str) -> Weights:
        return self.program_weights.get(program_code, self.weights)

    def areas_of_code(self, system: str | None, code: str) -> set[LivedExperience]:
        return {rule.area for rule in self.areas.rule if rule.matches(system, code)}


def _read(path: Path, model: type[_Strict]) -> Any:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return model.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MatchingConfigError(f"{path.name}: {exc}") from None
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MatchingConfigError(f"{path.name}: {where}") from None


def load_config(directory: Path | None = None) -> MatchingConfig:
    """The shipped files, with a program's folder (PEERLINK_MATCHING_DIR) laid over them."""
    weights: Weights = _read(HERE / "weights.toml", WeightsFile).weights
    areas: AreasFile = _read(HERE / "areas.toml", AreasFile)
    programs: dict[str, Weights] = {}
    if directory is not None:
        if not directory.is_dir():
            raise MatchingConfigError(f"{directory} is not a folder")
        if (directory / "areas.toml").exists():
            areas = _read(directory / "areas.toml", AreasFile)
        if (directory / "weights.toml").exists():
            weights = _read(directory / "weights.toml", WeightsFile).weights
        for path in sorted(directory.glob("weights-*.toml")):
            programs[path.stem.removeprefix("weights-")] = _read(path, WeightsFile).weights
    return MatchingConfig(weights, areas, programs)
