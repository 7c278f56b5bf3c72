"""Search spaces: a YAML file -> a validated, picklable description of a Ray Tune search.

```yaml
objective: {metric: fd, mode: min}
fixed:                       # trial-config overrides shared by every trial
  schedule.total_kimg: 12
params:                      # searched trial-config keys
  model.arch: {choice: [dcgan, resnet]}
  optim.lr_g: {loguniform: [1.0e-4, 1.0e-3]}
  model.g_width: {int: [16, 64], step: 16}
  loss.symmetry: {choice: [none, consistency, adversarial]}
  loss.lambda_sym: {uniform: [0.1, 2.0], when: {loss.symmetry: [consistency, adversarial]}}
points:                      # evaluated first, e.g. the literature default
  - {model.arch: dcgan, optim.lr_g: 2.0e-4, loss.symmetry: none}
scheduler: {type: asha, budget: compute, grace_kimg: 1, reduction_factor: 3, brackets: 1}
confirm: {top_k: 3, seeds: 3}          # retrain the top 3 and points[0] with 3 fresh seeds
searcher: {type: optuna, seed: 0}                             # or random
num_samples: 8
max_concurrent: 2
resources: {cpu: 1, gpu: 0}
```

The file is first checked against its schema (``space_schema.py``: shapes, types,
finite numbers, ranges, enums), then every key against the trial config: an unknown
key, a wrong type, a choice the config rejects, a condition on an unknown key or a
point outside its range is an error naming the file, the key and the reason, in one
line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fashion_tune.config import TrialConfig
from fashion_tune.errors import ConfigError
from fashion_tune.search.space_schema import (
    DISTRIBUTIONS,
    OBJECTIVE_METRICS,
    ParamSpec,
    SpaceFile,
    ValidationError,
    first_error,
)

__all__ = [
    "DISTRIBUTIONS",
    "OBJECTIVE_METRICS",
    "Confirm",
    "Param",
    "Scheduler",
    "Space",
    "load_space",
]
# load_space(**overrides) -> the file key each replaces, and the option that gave it
OVERRIDE_KEYS = {
    "num_samples": ("num_samples", "--num-samples"),
    "max_concurrent": ("max_concurrent", "--max-concurrent"),
    "cpus_per_trial": ("resources.cpu", "--cpus-per-trial"),
    "gpus_per_trial": ("resources.gpu", "--gpus-per-trial"),
}


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # one of DISTRIBUTIONS
    values: tuple[Any, ...] = ()  # choice
    low: float = 0.0
    high: float = 0.0
    step: int | None = None  # int
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # all must hold

    def active(self, chosen: dict[str, Any], base: dict[str, Any]) -> bool:
        return all(chosen.get(k, base.get(k)) in vals for k, vals in self.when)

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial (or Ray's captor of one) for a value."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step or 1)

    def contains(self, value: Any) -> str | None:
        """Why ``value`` is outside this parameter's range (None: it is inside)."""
        if self.kind == "choice":
            return None if value in self.values else f"not one of {list(self.values)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {value!r}"
        if not self.low <= value <= self.high:
            return f"{value!r} is outside [{self.low:g}, {self.high:g}]"
        if self.kind == "int":
            step = self.step or 1
            if float(value) != int(value) or (int(value) - int(self.low)) % step:
                return f"{value!r} is not on the grid {self.low:g}, {self.low + step:g}, ..."
        return None


@dataclass(frozen=True)
class Scheduler:
    type: str = "asha"  # asha (promotion), asha-stop (Ray's stopping ASHA) or fifo
    max_kimg: float = 0.0  # 0 = schedule.total_kimg of the fixed config
    grace_kimg: float = 1.0  # in the budget's unit
    reduction_factor: float = 3.0
    budget: str = "compute"  # compute (reference kimg of training FLOPs) or kimg
    brackets: int = 1
    smooth: int = 2  # rung value = mean of the last `smooth` evaluations

    @property
    def time_attr(self) -> str:
        """The result key that measures a trial's progress in this budget's unit."""
        return "compute" if self.budget == "compute" else "kimg"


@dataclass(frozen=True)
class Confirm:
    top_k: int = 3
    seeds: int = 3


@dataclass(frozen=True)
class Ablate:
    """One ``ablate:`` entry (``search/ablate.py``)."""

    key: str
    values: tuple[Any, ...]
    seeds: int = 5
    base: str = "best"
    sets: tuple[tuple[str, Any], ...] = ()
    kimg: float | None = None


@dataclass(frozen=True)
class Space:
    """A validated search space. Picklable: it is the define-by-run function itself."""

    path: str
    name: str
    metric: str
    mode: str
    fixed: dict[str, Any]
    params: tuple[Param, ...]
    points: tuple[dict[str, Any], ...]
    scheduler: Scheduler
    searcher: str
    seed: int
    num_samples: int
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    confirm: Confirm | None = None  # seed confirmation after the search
    ablate: tuple[Ablate, ...] = ()  # ablations after it

    def base_config(self) -> TrialConfig:
        return TrialConfig().with_overrides(self.fixed)

    @property
    def max_kimg(self) -> float:
        return self.scheduler.max_kimg or self.base_config().schedule.total_kimg

    def __call__(self, trial: Any) -> None:
        """Optuna define-by-run: suggest each active parameter in file order."""
        base = self.base_config().flat()
        chosen: dict[str, Any] = {}
        for p in self.params:
            if p.active(chosen, base):
                chosen[p.key] = p.suggest(trial)

    def config_for(self, params: dict[str, Any]) -> TrialConfig:
        """The trial config of one point: fixed settings, then the point's values."""
        return TrialConfig().with_overrides({**self.fixed, **params})

    def first_config(self, overrides: dict[str, Any] | None = None) -> TrialConfig:
        """Fixed settings + the first point (if any) + overrides: for `fashion-tune trial`."""
        point = dict(self.points[0]) if self.points else {}
        return TrialConfig().with_overrides({**self.fixed, **point, **(overrides or {})})

    def sample(self, seed: int = 0) -> dict[str, Any]:
        """One random point of the space (for --dry-run), via Optuna's random sampler."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        trial = study.ask()
        self(trial)
        return dict(trial.params)


def _ablate(path: str, i: int, spec: Any) -> Ablate:
    """An ``ablate:`` entry, its setting and values checked against the trial config."""
    from fashion_tune.errors import FashionTuneError
    from fashion_tune.search.ablate import check_values

    ((key, values),) = spec.vary.items()
    try:
        checked = check_values(key, tuple(values))
        known = TrialConfig().flat()
        for k in spec.set:  # values are checked with each value's config, when it runs
            if k not in known:
                TrialConfig().with_overrides({k: None})  # the "did you mean" error
    except FashionTuneError as exc:
        raise _err(path, f"ablate[{i}]", str(exc)) from None
    kimg = None if spec.kimg is None else float(spec.kimg)
    return Ablate(key, checked, int(spec.seeds), spec.base, tuple(spec.set.items()), kimg)


def _err(path: str, key: str, reason: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {reason}")


def _check_value(path: str, where: str, key: str, value: Any, context: dict[str, Any]) -> None:
    try:
        TrialConfig().with_overrides({**context, key: value})
    except ConfigError as exc:
        hint = ""
        if "'loss.symmetry'" in str(exc) or "must be <=" in str(exc):
            hint = " (a value that needs another setting wants a 'when' condition)"
        raise _err(path, where, f"{exc}{hint}") from None


def _param(path: str, key: str, spec: ParamSpec, known: set[str], fixed: dict) -> Param:
    """A schema-valid parameter, checked against the trial config."""
    where = f"params.{key}"
    if key not in known:
        raise _err(path, where, "not a trial config key (see fashion-tune trial --help)")
    when: list[tuple[str, tuple[Any, ...]]] = []
    for ckey, cvals in (spec.when or {}).items():
        if ckey not in known:
            raise _err(path, f"{where}.when", f"condition on unknown config key {ckey!r}")
        when.append((ckey, tuple(cvals) if isinstance(cvals, list) else (cvals,)))
    # a value is checked where its conditions hold (e.g. lambda_sym with a symmetry variant)
    ctx = {**fixed, **{ckey: cvals[0] for ckey, cvals in when if cvals}}
    kind = spec.kind
    if kind == "choice":
        values = tuple(spec.choice or ())
        for v in values:
            _check_value(path, where, key, v, ctx)
        return Param(key, kind, values=values, when=tuple(when))
    low, high = spec.bounds_or_values(kind)
    # the config must accept both ends (types and ranges)
    for v in (low, high):
        _check_value(path, where, key, v, ctx)
    return Param(key, kind, low=float(low), high=float(high), step=spec.step, when=tuple(when))


def _read(p: str) -> Any:
    """The YAML document of file ``p``; every way of failing is one ConfigError line."""
    try:
        text = Path(p).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"search space {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"search space {p} is a folder; give a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read search space {p}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{p}: not valid YAML: nested too deeply") from None


def _apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, str]:
    """Put command-line overrides into the document; returns key -> the option that set it."""
    labels = {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in OVERRIDE_KEYS:
            raise TypeError(f"load_space() got an unknown override {name!r}")
        key, option = OVERRIDE_KEYS[name]
        section, _, sub = key.partition(".")
        if sub:
            if not isinstance(raw.get(section), dict):
                raw[section] = {} if raw.get(section) is None else raw[section]
            if isinstance(raw[section], dict):
                raw[section] = {**raw[section], sub: value}
        else:
            raw[key] = value
        labels[key] = f"from {option}"
    return labels


def load_space(path: str | Path, **overrides: Any) -> Space:
    """Read and validate a search-space YAML; ``overrides`` (``num_samples``,
    ``max_concurrent``, ``cpus_per_trial``, ``gpus_per_trial``) replace its settings."""
    p = str(path)
    raw = _read(p)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    labels = _apply_overrides(raw, overrides)
    try:
        doc = SpaceFile.model_validate(raw)
    except ValidationError as exc:
        key, reason = first_error(exc, labels)
        raise _err(p, key, reason) from None
    known = set(TrialConfig().flat())

    fixed = dict(doc.fixed)
    for key in fixed:
        if key not in known:
            raise _err(p, f"fixed.{key}", "not a trial config key (see fashion-tune trial --help)")
    try:
        base = TrialConfig().with_overrides(fixed)
    except ConfigError as exc:
        raise _err(p, "fixed", str(exc)) from None

    params = tuple(_param(p, k, v, known, fixed) for k, v in doc.params.items())
    for i, q in enumerate(params):  # conditions are evaluated in file order
        for later in params[i + 1 :]:
            if later.key in dict(q.when):
                raise _err(
                    p, f"params.{q.key}.when", f"{later.key} is searched below it: list it first"
                )
    if overlap := set(fixed) & {q.key for q in params}:
        raise _err(p, f"params.{sorted(overlap)[0]}", "both fixed and searched")

    by_key = {q.key: q for q in params}
    for i, point in enumerate(doc.points):
        for key, value in point.items():
            if key not in by_key:
                raise _err(p, f"points[{i}].{key}", "not a searched parameter")
            if problem := by_key[key].contains(value):
                raise _err(p, f"points[{i}].{key}", f"{problem} (its range in params)")
        try:
            TrialConfig().with_overrides({**fixed, **point})
        except ConfigError as exc:
            raise _err(p, f"points[{i}]", str(exc)) from None

    sch = doc.scheduler
    sched = Scheduler(
        type=sch.type,
        max_kimg=float(sch.max_kimg),
        grace_kimg=float(sch.grace_kimg),
        reduction_factor=float(sch.reduction_factor),
        budget=sch.budget,
        brackets=int(sch.brackets),
        smooth=int(sch.smooth),
    )
    max_kimg = sched.max_kimg or base.schedule.total_kimg
    if sched.type.startswith("asha") and not sched.grace_kimg <= max_kimg:
        raise _err(p, "scheduler.grace_kimg", f"must be in (0, max_kimg={max_kimg:g}]")
    space = Space(
        path=p,
        name=doc.name or Path(p).stem,
        description=doc.description,
        metric=doc.objective.metric,
        mode=doc.objective.mode,
        fixed=fixed,
        params=params,
        points=tuple(dict(pt) for pt in doc.points),
        scheduler=sched,
        searcher=doc.searcher.type,
        seed=int(doc.searcher.seed),
        num_samples=int(doc.num_samples),
        max_concurrent=int(doc.max_concurrent),
        cpus_per_trial=float(doc.resources.cpu),
        gpus_per_trial=float(doc.resources.gpu),
        confirm=Confirm(int(doc.confirm.top_k), int(doc.confirm.seeds)) if doc.confirm else None,
        ablate=tuple(_ablate(p, i, a) for i, a in enumerate(doc.ablate)),
    )
    # parameters can clash with each other (lambda_sym > 0 while symmetry is none):
    # build the configs of a few random points to catch that now, not mid-search
    for seed in range(16):
        point = space.sample(seed)
        try:
            space.config_for(point)
        except ConfigError as exc:
            reason = f"{exc} (at the point {point}); add a 'when' condition"
            raise _err(p, "params", reason) from None
    return space
