"""Search spaces: a YAML file -> a validated, picklable description of a Ray Tune search.

```yaml
objective: {metric: kid, mode: min}
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
scheduler: {type: asha, grace_kimg: 3, reduction_factor: 3}   # max = schedule.total_kimg
searcher: {type: optuna, seed: 0}                             # or random
num_samples: 8
max_concurrent: 2
resources: {cpu: 1, gpu: 0}
```

Every key is checked against the trial config: an unknown key, a wrong type, a
choice the config rejects, or a condition on an unknown key is an error naming
the file, the key and the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fashion_tune.config import TrialConfig
from fashion_tune.errors import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
TOP_KEYS = {
    "name", "description", "objective", "fixed", "params", "points", "scheduler", "searcher",
    "num_samples", "max_concurrent", "resources",
}  # fmt: skip
OBJECTIVE_METRICS = ("kid", "fd", "sym_gap")


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


@dataclass(frozen=True)
class Scheduler:
    type: str = "asha"  # asha or fifo
    max_kimg: float = 0.0  # 0 = schedule.total_kimg of the fixed config
    grace_kimg: float = 1.0
    reduction_factor: float = 3.0


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


def _err(path: str, key: str, reason: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {reason}")


def _num(path: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _err(path, key, f"expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise _err(path, key, f"expected a number, got {value!r}") from None


def _check_value(path: str, where: str, key: str, value: Any, context: dict[str, Any]) -> None:
    try:
        TrialConfig().with_overrides({**context, key: value})
    except ConfigError as exc:
        hint = ""
        if "'loss.symmetry'" in str(exc) or "must be <=" in str(exc):
            hint = " (a value that needs another setting wants a 'when' condition)"
        raise _err(path, where, f"{exc}{hint}") from None


def _parse_param(path: str, key: str, spec: Any, known: set[str], fixed: dict) -> Param:
    where = f"params.{key}"
    if key not in known:
        raise _err(path, where, "not a trial config key (see fashion-tune trial --help)")
    if not isinstance(spec, dict):
        raise _err(path, where, f"expected a mapping like {{choice: [...]}}, got {spec!r}")
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    extra = set(spec) - set(DISTRIBUTIONS) - {"when", "step"}
    if len(kinds) != 1 or extra:
        raise _err(
            path,
            where,
            f"give exactly one of {', '.join(DISTRIBUTIONS)} (plus optional "
            f"when / step); got {', '.join(map(str, spec))}",
        )
    kind = kinds[0]
    arg = spec[kind]
    when: list[tuple[str, tuple[Any, ...]]] = []
    for ckey, cvals in (spec.get("when") or {}).items():
        if ckey not in known:
            raise _err(path, f"{where}.when", f"condition on unknown config key {ckey!r}")
        cvals = tuple(cvals) if isinstance(cvals, list) else (cvals,)
        when.append((ckey, cvals))
    # a value is checked where its conditions hold (e.g. lambda_sym with a symmetry variant)
    ctx = {**fixed, **{ckey: cvals[0] for ckey, cvals in when}}
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise _err(path, where, "choice needs a non-empty list")
        for v in arg:
            _check_value(path, where, key, v, ctx)
        return Param(key, kind, values=tuple(arg), when=tuple(when))
    if not isinstance(arg, list) or len(arg) != 2:
        raise _err(path, where, f"{kind} needs [low, high]")
    low, high = _num(path, where, arg[0]), _num(path, where, arg[1])
    if not low < high:
        raise _err(path, where, f"low {low:g} must be below high {high:g}")
    if kind == "loguniform" and low <= 0:
        raise _err(path, where, "loguniform needs low > 0")
    step = spec.get("step")
    if kind == "int":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise _err(path, where, "int needs integer bounds")
        if step is not None and (not isinstance(step, int) or step < 1):
            raise _err(path, where, "step must be a positive integer")
    elif step is not None:
        raise _err(path, where, "step applies to int ranges only")
    # the config must accept both ends (types and ranges)
    for v in (int(low), int(high)) if kind == "int" else (low, high):
        _check_value(path, where, key, v, ctx)
    return Param(key, kind, low=low, high=high, step=step, when=tuple(when))


def load_space(path: str | Path, **overrides: Any) -> Space:
    """Read and validate a search-space YAML; ``overrides`` replace top-level settings."""
    p = str(path)
    try:
        raw = yaml.safe_load(Path(p).read_text())
    except FileNotFoundError:
        raise ConfigError(f"search space {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise _err(p, sorted(unknown)[0], f"unknown setting; valid: {', '.join(sorted(TOP_KEYS))}")
    known = set(TrialConfig().flat())

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _err(p, "fixed", "expected a mapping of config keys")
    for key in fixed:
        if key not in known:
            raise _err(p, f"fixed.{key}", "not a trial config key (see fashion-tune trial --help)")
    try:
        base = TrialConfig().with_overrides({k: v for k, v in fixed.items()})
    except ConfigError as exc:
        raise _err(p, "fixed", str(exc)) from None
    del base

    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise _err(p, "params", "expected a mapping of config keys to distributions")
    params = tuple(_parse_param(p, k, v, known, fixed) for k, v in params_raw.items())
    for i, q in enumerate(params):  # conditions are evaluated in file order
        for later in params[i + 1 :]:
            if later.key in dict(q.when):
                raise _err(
                    p, f"params.{q.key}.when", f"{later.key} is searched below it: list it first"
                )
    if overlap := set(fixed) & {q.key for q in params}:
        raise _err(p, f"params.{sorted(overlap)[0]}", "both fixed and searched")

    obj = raw.get("objective") or {}
    metric, mode = obj.get("metric", "kid"), obj.get("mode", "min")
    if metric not in OBJECTIVE_METRICS:
        raise _err(
            p, "objective.metric", f"{metric!r}; choose one of {', '.join(OBJECTIVE_METRICS)}"
        )
    if mode not in ("min", "max"):
        raise _err(p, "objective.mode", f"{mode!r}; choose min or max")

    points = []
    for i, point in enumerate(raw.get("points") or []):
        if not isinstance(point, dict):
            raise _err(p, f"points[{i}]", "expected a mapping of config keys")
        for key in point:
            if key not in {q.key for q in params}:
                raise _err(p, f"points[{i}].{key}", "not a searched parameter")
        try:
            TrialConfig().with_overrides({**fixed, **point})
        except ConfigError as exc:
            raise _err(p, f"points[{i}]", str(exc)) from None
        points.append(dict(point))

    sch = dict(raw.get("scheduler") or {})
    bad = set(sch) - {"type", "max_kimg", "grace_kimg", "reduction_factor"}
    if bad:
        raise _err(p, f"scheduler.{sorted(bad)[0]}", "unknown setting")
    sched = Scheduler(
        type=str(sch.get("type", "asha")),
        max_kimg=_num(p, "scheduler.max_kimg", sch.get("max_kimg", 0)),
        grace_kimg=_num(p, "scheduler.grace_kimg", sch.get("grace_kimg", 1)),
        reduction_factor=_num(p, "scheduler.reduction_factor", sch.get("reduction_factor", 3)),
    )
    if sched.type not in ("asha", "fifo"):
        raise _err(p, "scheduler.type", f"{sched.type!r}; choose asha or fifo")
    if sched.reduction_factor <= 1:
        raise _err(p, "scheduler.reduction_factor", "must be > 1")
    total = TrialConfig().with_overrides(fixed).schedule.total_kimg
    max_kimg = sched.max_kimg or total
    if sched.type == "asha" and not 0 < sched.grace_kimg <= max_kimg:
        raise _err(p, "scheduler.grace_kimg", f"must be in (0, max_kimg={max_kimg:g}]")

    srch = dict(raw.get("searcher") or {})
    searcher = str(srch.get("type", "optuna"))
    if searcher not in ("optuna", "random"):
        raise _err(p, "searcher.type", f"{searcher!r}; choose optuna or random")
    res = dict(raw.get("resources") or {})
    if set(res) - {"cpu", "gpu"}:
        raise _err(p, "resources", "only cpu and gpu can be set")
    space = Space(
        path=p,
        name=str(raw.get("name") or Path(p).stem),
        description=str(raw.get("description") or ""),
        metric=metric,
        mode=mode,
        fixed=dict(fixed),
        params=params,
        points=tuple(points),
        scheduler=sched,
        searcher=searcher,
        seed=int(srch.get("seed", 0)),
        num_samples=int(raw.get("num_samples", 8)),
        max_concurrent=int(raw.get("max_concurrent", 0)),
        cpus_per_trial=_num(p, "resources.cpu", res.get("cpu", 1)),
        gpus_per_trial=_num(p, "resources.gpu", res.get("gpu", 0)),
    )
    for key, value in overrides.items():
        if value is not None:
            object.__setattr__(space, key, value)
    # parameters can clash with each other (lambda_sym > 0 while symmetry is none):
    # build the configs of a few random points to catch that now, not mid-search
    for seed in range(16):
        point = space.sample(seed)
        try:
            space.config_for(point)
        except ConfigError as exc:
            reason = f"{exc} (at the point {point}); add a 'when' condition"
            raise _err(p, "params", reason) from None
    if space.num_samples < 1:
        raise _err(p, "num_samples", "must be >= 1")
    if space.cpus_per_trial < 0 or space.gpus_per_trial < 0 or math.isnan(space.gpus_per_trial):
        raise _err(p, "resources", "cpu and gpu must be >= 0")
    return space
