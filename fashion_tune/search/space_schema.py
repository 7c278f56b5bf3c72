"""The search-space file's schema (pydantic v2): shapes, types, finite numbers, ranges, enums.

``space.py`` validates a YAML file against :class:`SpaceFile` first, then checks what
needs the trial config (keys, values, conditions, points). A pydantic error becomes one
line naming the file, the key (``params.optim.lr_g.uniform[0]``) and the reason.

Enumerations come from one place each: schedulers and searchers from :data:`SCHEDULERS`
/ :data:`SEARCHERS` (``tuner.py`` builds them by these names), objective metrics from
:data:`OBJECTIVE_METRICS`; the values of a ``choice`` (model families, losses, penalties,
symmetry variants) are checked by the trial config, whose ``choices`` list them.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fashion_tune.experiment_layout import name_problem
from fashion_tune.metrics.names import SCORES

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
OBJECTIVE_METRICS = tuple(SCORES)  # every score a tick reports (fd is the default objective)
# asha: promotion-based ASHA (fashion_tune.search.promotion); asha-stop: Ray's stopping
# AsyncHyperBandScheduler; fifo: every trial to the end
SCHEDULERS = ("asha", "asha-stop", "fifo")
BUDGETS = ("compute", "kimg")  # compute: training FLOPs in kimg of the reference config
SEARCHERS = ("optuna", "random")  # optuna: seeded TPE; random: Optuna's seeded RandomSampler
MAX_SEED = 2**32 - 1  # what Optuna's samplers (NumPy) accept
MAX_INT = 2**53  # integers beyond this lose precision as floats (and Ray / Optuna use floats)
MAX_SAMPLES = 1_000_000  # trials in one search
EXAMPLES = {  # shown when a mapping is written as something else
    "objective": "{metric: fd, mode: min}",
    "scheduler": "{type: asha, budget: compute, grace_kimg: 1, reduction_factor: 3}",
    "confirm": "{top_k: 3, seeds: 3}",
    "ablate": "{vary: {loss.symmetry: [none, pixel]}, seeds: 5, base: best}",
    "searcher": "{type: optuna, seed: 0}",
    "resources": "{cpu: 1, gpu: 0}",
    "fixed": "{schedule.total_kimg: 16}",
    "params": "{optim.lr_g: {loguniform: [1.0e-4, 1.0e-3]}}",
    "when": "{loss.symmetry: [consistency, pixel]}",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> float:
    """A finite number (YAML 1.1 reads ``1e-4`` as a string: such strings count)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {_short(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_short(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise ValueError("is too large a number") from None
    if not math.isfinite(out):
        raise ValueError(f"must be a finite number, got {value!r}")
    return out


def _integer(value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_short(value)}")
    if abs(value) > MAX_INT:
        raise ValueError(f"is too large ({len(str(abs(value)))} digits)")
    return value


# YAML 1.1 (PyYAML) reads 2e-4 as a string: such strings are the numbers users meant
_EXPONENT_FLOAT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def _scalar(value: Any) -> Any:
    """A config value: a string, true/false, an integer or a finite number."""
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        value = float(value)
    if isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value
    raise ValueError(f"expected a single value (number, string or true/false), got {_short(value)}")


def _at_least(low: float, strict: bool = False) -> Any:
    def check(v: Any) -> Any:
        if v < low or (strict and v == low):
            raise ValueError(f"must be {'>' if strict else '>='} {low:g}, got {v!r}")
        return v

    return check


def _at_most(high: float) -> Any:
    def check(v: Any) -> Any:
        if v > high:
            raise ValueError(f"must be <= {high:g}, got {v!r}")
        return v

    return check


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(v: Any) -> Any:
        if v not in choices:
            raise ValueError(f"{_short(v)}; choose one of {', '.join(choices)}")
        return v

    return check


Number = Annotated[Any, AfterValidator(_number)]
Integer = Annotated[Any, AfterValidator(_integer)]
Scalar = Annotated[Any, AfterValidator(_scalar)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParamSpec(_Strict):
    """One searched key: exactly one distribution, plus ``when`` / ``step``."""

    choice: list[Scalar] | None = None
    uniform: tuple[Number, Number] | None = None
    loguniform: tuple[Number, Number] | None = None
    int_: tuple[Integer, Integer] | None = Field(None, alias="int")
    step: Annotated[Integer, AfterValidator(_at_least(1))] | None = None
    when: dict[str, Scalar | list[Scalar]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_distribution(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kinds = [k for k in data if k in DISTRIBUTIONS]
            extra = set(data) - set(DISTRIBUTIONS) - {"when", "step"}
            if len(kinds) != 1 or extra:
                raise ValueError(
                    f"give exactly one of {', '.join(DISTRIBUTIONS)} (plus optional when / "
                    f"step); got {', '.join(map(str, data)) or 'nothing'}"
                )
            if data[kinds[0]] is None:
                shape = "a list of values" if kinds[0] == "choice" else "[low, high]"
                raise ValueError(f"{kinds[0]} needs {shape}, got nothing")
            when = data.get("when")
            for key, values in when.items() if isinstance(when, dict) else ():
                if values == []:
                    raise ValueError(f"when: {key} needs at least one value")
        return data

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if self.bounds_or_values(k) is not None)

    def bounds_or_values(self, kind: str) -> Any:
        return self.int_ if kind == "int" else getattr(self, kind)

    @model_validator(mode="after")
    def _ranges(self) -> ParamSpec:
        kind = self.kind
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs a non-empty list")
        else:
            low, high = self.bounds_or_values(kind)
            if not low < high:
                raise ValueError(f"low {low:g} must be below high {high:g}")
            if kind == "loguniform" and low <= 0:
                raise ValueError("loguniform needs low > 0")
        if self.step is not None and kind != "int":
            raise ValueError("step applies to int ranges only")
        return self


class Objective(_Strict):
    metric: Annotated[str, AfterValidator(_one_of(OBJECTIVE_METRICS))] = "fd"
    mode: Annotated[str, AfterValidator(_one_of(("min", "max")))] = "min"


class SchedulerSpec(_Strict):
    type: Annotated[str, AfterValidator(_one_of(SCHEDULERS))] = "asha"
    max_kimg: Annotated[Number, AfterValidator(_at_least(0))] = 0.0  # 0: schedule.total_kimg
    # in the budget's unit: kimg, or (compute) kimg of the reference config's FLOPs
    grace_kimg: Annotated[Number, AfterValidator(_at_least(0, strict=True))] = 1.0
    reduction_factor: Annotated[Number, AfterValidator(_at_least(1, strict=True))] = 3.0
    budget: Annotated[str, AfterValidator(_one_of(BUDGETS))] = "compute"
    brackets: Annotated[Integer, AfterValidator(_at_least(1)), AfterValidator(_at_most(8))] = 1
    # a rung value is the mean of a trial's last `smooth` evaluations (1: the tick's own)
    smooth: Annotated[Integer, AfterValidator(_at_least(1)), AfterValidator(_at_most(20))] = 2


class ConfirmSpec(_Strict):
    """Retrain the top-k configs and the literature default (first point) with fresh seeds."""

    top_k: Annotated[Integer, AfterValidator(_at_least(1)), AfterValidator(_at_most(100))] = 3
    seeds: Annotated[Integer, AfterValidator(_at_least(2)), AfterValidator(_at_most(100))] = 3


class AblateSpec(_Strict):
    """Vary one setting of the best (or default) config, the same fresh seeds per value."""

    vary: dict[str, list[Scalar]]
    seeds: Annotated[Integer, AfterValidator(_at_least(2)), AfterValidator(_at_most(100))] = 5
    base: Annotated[str, AfterValidator(_one_of(("best", "default")))] = "best"
    set: dict[str, Scalar] = {}
    kimg: Annotated[Number, AfterValidator(_at_least(0, strict=True))] | None = None

    @field_validator("vary")
    @classmethod
    def _one_setting(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if len(v) != 1:
            raise ValueError(f"names one setting and its values, got {len(v)} settings")
        return v


class SearcherSpec(_Strict):
    type: Annotated[str, AfterValidator(_one_of(SEARCHERS))] = "optuna"
    seed: Annotated[Integer, AfterValidator(_at_least(0)), AfterValidator(_at_most(MAX_SEED))] = 0


class Resources(_Strict):
    cpu: Annotated[Number, AfterValidator(_at_least(0))] = 1.0
    gpu: Annotated[Number, AfterValidator(_at_least(0))] = 0.0


class SpaceFile(_Strict):
    """The whole file. Absent (or empty) sections take their defaults."""

    name: str | None = None
    description: str = ""
    objective: Objective = Objective()
    fixed: dict[str, Scalar] = {}
    params: dict[str, ParamSpec] = {}
    points: list[dict[str, Scalar]] = []
    scheduler: SchedulerSpec = SchedulerSpec()
    searcher: SearcherSpec = SearcherSpec()
    confirm: ConfirmSpec | None = None  # absent: no seed confirmation
    ablate: list[AblateSpec] = []  # after the search (and confirmation), in file order
    num_samples: Annotated[
        Integer, AfterValidator(_at_least(1)), AfterValidator(_at_most(MAX_SAMPLES))
    ] = 8
    max_concurrent: Annotated[
        Integer, AfterValidator(_at_least(0)), AfterValidator(_at_most(MAX_SAMPLES))
    ] = 0  # 0: Ray decides
    resources: Resources = Resources()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (problem := name_problem(v)):
            raise ValueError(f"{_short(v)} {problem}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `searcher:` with nothing after it is YAML null: the defaults, as if absent
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if v is not None}
            if isinstance(data.get("ablate"), dict):  # one ablation: a mapping is enough
                data["ablate"] = [data["ablate"]]
            return data
        return data


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def first_error(exc: ValidationError, labels: dict[str, str] | None = None) -> tuple[str, str]:
    """(key, reason) of the first problem pydantic found, in words a user acts on."""
    err = exc.errors(include_url=False)[0]
    # drop pydantic's union-member tags ("function-after[_scalar(), any]", "list[...]")
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.endswith("]")))
    key = _where(loc) or "(top level)"
    kind, value = err["type"], err.get("input")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        example = EXAMPLES.get(str(loc[-1]) if loc else "", "{key: value, ...}")
        reason = f"expected a mapping like {example}, got {_short(value)}"
    elif kind == "list_type" or kind == "tuple_type":
        reason = f"expected a list, got {_short(value)}"
    elif kind == "too_short" or kind == "too_long":
        reason = f"expected [low, high], got {_short(value)}"
    elif kind == "extra_forbidden":
        parent = SpaceFile if len(loc) == 1 else None
        valid = f"; valid: {', '.join(sorted(parent.model_fields))}" if parent else ""
        reason = f"unknown setting{valid}"
    elif kind in ("string_type", "str_type"):
        reason = f"expected text, got {_short(value)}"
    elif kind == "value_error":
        reason = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    else:
        reason = err["msg"]
    top = str(loc[0]) if loc else ""
    if labels and (label := labels.get(key) or labels.get(top)):
        key = f"{key} ({label})"
    return key, reason.replace("\n", " ")


__all__ = [
    "DISTRIBUTIONS",
    "OBJECTIVE_METRICS",
    "SCHEDULERS",
    "SEARCHERS",
    "ParamSpec",
    "SpaceFile",
    "ValidationError",
    "first_error",
]
