"""The small-cell suppression policy of the outcome report, as data (``suppression.toml``).

Read and checked once (``load_policy``); a wrong file fails with its name when the report module
is first imported, which the gateway and the ``peerlink report`` command do at start-up.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).parent
POLICY_FILE = HERE / "suppression.toml"

MARKER = "suppressed"
Suppressed = Literal["suppressed"]


class PolicyError(ValueError):
    """The suppression policy file is wrong (the message names the file)."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: int = Field(ge=1, le=1000, description="A figure based on fewer participants is suppressed.")
    marker: Suppressed = Field(description="What a suppressed cell shows instead of a figure.")
    suppress_small_numerators: bool = Field(
        description="Also suppress shares that would give away a count of 1 to threshold-1 participants."
    )
    source: str = Field(min_length=20)
    why: str = Field(min_length=20)

    def small(self, count: int) -> bool:
        """A count that may not be shown or be derivable: 1 to threshold-1 (0 may)."""
        return 0 < count < self.threshold


def read_policy(path: Path) -> Policy:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        return Policy.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path.name} cannot be read: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path.name} is wrong: {problems}") from None


@cache
def load_policy() -> Policy:
    return read_policy(POLICY_FILE)
