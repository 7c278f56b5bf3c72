"""The GAN training loop. It knows nothing about Ray: it takes callbacks.

``train(cfg, run_dir, report=..., should_stop=...)`` trains one GAN, counting
progress in kimg (thousands of real images shown to D). Once per tick it
evaluates fd / kid / sym_gap, writes a checkpoint, calls ``report(metrics,
checkpoint_dir)`` (the metrics plus ``resumed_from_kimg``, where this run resumed) and
asks ``should_stop()``. ``fashion-tune trial`` calls it
directly; the Ray Tune trainable adapts the callbacks to ``tune.report``.

The loop owns ticks, the EMA, checkpoints and exact resume (one
:class:`~fashion_tune.checkpoint.TrainState`), metric logging and TensorBoard; what a
kind of GAN owns (models, losses, one optimisation step, its scores and sample grid)
is a task from :mod:`fashion_tune.tasks`, chosen by ``model.arch``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_tune import checkpoint as ckpt
from fashion_tune.atomic import atomic_path, write_text
from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.flops import FLOPS_FILE
from fashion_tune.metrics import reference as metric_reference
from fashion_tune.metrics.evaluate import OBJECTIVE, nan_scores
from fashion_tune.models import Generator, build_generator, family_kind
from fashion_tune.tasks import Runtime, build_models, build_task, select_device
from fashion_tune.tasks import label_freq as _label_freq

ReportFn = Callable[[dict[str, Any], "Path | None"], None]
# kept importable from here: the CLI, report and benchmarks rebuild models through them
__all__ = [
    "TrialResult",
    "_label_freq",
    "build_models",
    "rebuild_generator",
    "select_device",
    "train",
]


@dataclass
class TrialResult:
    status: str  # "finished", "stopped" (should_stop said so) or "diverged"
    metrics: dict[str, Any]  # the last report
    best: dict[str, Any]  # the report with the best objective (lowest fd)
    run_dir: Path
    checkpoint: Path | None  # the latest checkpoint
    samples: Path | None  # the latest sample grid
    history: list[dict[str, Any]] = field(default_factory=list)


def rebuild_generator(state: dict[str, Any], cfg: TrialConfig, key: str = "G_ema") -> Generator:
    """A checkpoint's generator, from the checkpoint alone (no shard set needed)."""
    if state.get("task") == "paired":
        raise ckpt.CheckpointError(
            "this is a fashiongan (sketch + fabric) checkpoint: its generator needs a sketch and "
            "a fabric (fashion-tune sample CHECKPOINT --sketch S.png --fabric F.png); its scores "
            "are in its trial's metrics.jsonl"
        )
    meta = state["model_meta"]
    m = cfg.model
    G = build_generator(
        m.arch,
        img_size=int(meta["img_size"]),
        channels=int(meta["channels"]),
        z_dim=m.z_dim,
        num_classes=int(meta["num_classes"]),
        width=m.g_width,
        depth=m.g_depth + (1 if m.arch == "resnet" else 0),
    )
    _load_weights(G, state[key if key in state else "G"], "G", cfg)
    return G


def _load_weights(net: torch.nn.Module, weights: Any, name: str, cfg: TrialConfig) -> None:
    """Load a checkpoint's weights; a shape that does not fit is one line naming the cause."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        m = cfg.model
        raise ckpt.CheckpointError(
            f"the checkpoint's {name} weights do not fit the model this config builds "
            f"(model.arch={m.arch}, z_dim={m.z_dim}, g_width={m.g_width}, d_width={m.d_width}, "
            f"g_depth={m.g_depth}, d_depth={m.d_depth}, d_norm={m.d_norm}; and the data set's "
            f"size, channels and classes): a resumed trial keeps its model and data shape "
            f"({first[:160]})"
        ) from None


class _Data:
    """Endless batches with a resumable position (epoch, batch within the epoch)."""

    def __init__(self, stream: ShardBatches, epoch: int = 0, batch: int = 0):
        self.stream, self.epoch, self.batch = stream, epoch, batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        while True:
            self.stream.set_epoch(self.epoch, self.batch)
            for item in self.stream:
                self.batch += 1
                yield item
            self.epoch, self.batch = self.epoch + 1, 0


def _ema_update(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        ema_p: list[torch.Tensor] = list(G_ema.parameters())
        src: list[torch.Tensor] = list(G.parameters())
        torch._foreach_lerp_(ema_p, src, 1.0 - beta)
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def train(
    cfg: TrialConfig,
    run_dir: str | Path,
    *,
    report: ReportFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: str | Path | None = None,
    progress: Callable[[float, float, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
    keep_checkpoints: int = 2,
    checkpoint_root: str | Path | None = None,
) -> TrialResult:
    """Train one GAN; see the module docstring for the callback contract."""
    run_dir = Path(run_dir)
    rt, sch, opt_cfg = cfg.runtime, cfg.schedule, cfg.optim

    # -- setup: determinism, device, data, the task (models, losses, one step) --------------
    if rt.threads:
        torch.set_num_threads(rt.threads)
    torch.manual_seed(rt.seed)
    runtime = Runtime.from_config(cfg)
    shards = ShardSet(cfg.data.path)
    paired = family_kind(cfg.model.arch) == "paired"  # sketch + fabric columns too
    stream = ShardBatches(
        shards, split=cfg.data.split, batch_size=cfg.data.batch_size, seed=rt.seed, pairs=paired
    )
    task = build_task(cfg, shards, runtime)
    flops_img = _flops_per_image(cfg, shards, run_dir)  # the compute budget's unit

    nimg, tick, data_pos = 0, 0, (0, 0)
    resumed_kimg = 0.0  # told to report() each tick (not a metric: kept out of the history)
    history: list[dict[str, Any]] = []
    if resume is not None:
        ts, _ = ckpt.load_train_state(resume, map_location=runtime.device)
        task.load_state(
            ts.nets, ts.optimizers, ts.rng_noise, lambda n, w, k: _load_weights(n, w, k, cfg)
        )
        torch.set_rng_state(ts.rng_torch.cpu())
        nimg, tick, data_pos, history = ts.nimg, ts.tick, (ts.epoch, ts.batch), ts.history
        resumed_kimg = nimg / 1000
        log(f"resumed from {ckpt.resolve(resume)} at {nimg / 1000:.1f} kimg (tick {tick})")
    data = _Data(stream, *data_pos)

    # written once the data, the models and any resume state are known to be usable, so a
    # user error leaves no run folder behind
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.json", cfg.to_json())
    flops_doc = {"flops_per_image": flops_img, "config": cfg.to_json()}
    write_text(run_dir / FLOPS_FILE, json.dumps(flops_doc))
    if resume is not None:  # the log restarts from the checkpoint: no tick twice, none lost
        write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
    # the reference is made before any trial (data prepare / data reference / search):
    # a trial only loads it, so every trial on every node scores with the same ruler
    ref = metric_reference.load(cfg.metrics.reference or cfg.data.path, shards)
    inception = None
    if cfg.metrics.inception:
        from fashion_tune.metrics.inception import InceptionMetric, inception_cache_dir

        n_inc = min(cfg.metrics.inception_samples, cfg.metrics.num_samples)
        inception = InceptionMetric(shards, n_inc, inception_cache_dir(shards), str(runtime.device))
    task.setup_eval(ref, inception)
    from tensorboardX import SummaryWriter

    tb = SummaryWriter(str(run_dir / "tb"))
    total_nimg = round(sch.total_kimg * 1000)
    tick_nimg = max(1, round(sch.tick_kimg * 1000))
    B = cfg.data.batch_size

    # -- the loop: a tick = tick_kimg of reals, then evaluation, checkpoint, report --------
    status = "finished"
    batches = iter(data)
    last_ckpt: Path | None = None
    samples_path: Path | None = None
    best: dict[str, Any] = min(history, key=_objective) if history else {}
    metrics: dict[str, Any] = history[-1] if history else {}
    ckpt_dir = Path(checkpoint_root) if checkpoint_root else run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(nimg / 1000, sch.total_kimg, metrics)
    while nimg < total_nimg:
        tick_start, t0 = nimg, time.perf_counter()
        sums = torch.zeros(len(task.loss_names), device=runtime.device)  # summed over steps
        steps = 0
        next_tick = min(total_nimg, (nimg // tick_nimg + 1) * tick_nimg)
        while nimg < next_tick:
            shown, losses = task.step(batches)
            nimg += shown
            sums += losses
            steps += 1
            _ema_nimg = opt_cfg.ema_kimg * 1000
            if opt_cfg.ema_kimg > 0:
                if opt_cfg.ema_rampup > 0:
                    _ema_nimg = min(_ema_nimg, nimg * opt_cfg.ema_rampup)
                _ema_update(task.G_ema, task.G, 0.5 ** (B / max(_ema_nimg, 1e-8)))
            else:
                _ema_update(task.G_ema, task.G, 0.0)
            if progress and steps % 10 == 0:
                progress(nimg / 1000, sch.total_kimg, metrics)
        train_s = time.perf_counter() - t0
        tick += 1
        means = (sums / max(steps, 1)).tolist()
        diverged = not all(math.isfinite(v) for v in means)

        # -- maintenance: metrics, samples, checkpoint, report -----------------------------
        t1 = time.perf_counter()
        # a diverged trial reports NaN metrics: ASHA's cutoffs skip NaN (an inf would
        # poison the percentile), and the searcher records the trial as failed
        scores = task.evaluate() if not diverged else {**nan_scores(), "metric_ref": task.ruler}
        eval_s = time.perf_counter() - t1
        metrics = {
            "kimg": nimg / 1000,
            "tick": tick,
            **scores,
            **{f"loss/{name}": v for name, v in zip(task.loss_names, means)},
            "img_per_s": (nimg - tick_start) / max(train_s, 1e-9),
            "gflop": nimg * flops_img / 1e9,  # training FLOPs so far (fashion_tune.flops)
            "progress": nimg / total_nimg,  # 1 = the config's full budget
            "eval_frac": eval_s / max(train_s + eval_s, 1e-9),
            "diverged": int(diverged),
            "featnet_acc": ref.accuracy,
        }
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                tb.add_scalar(name if "/" in name else f"metrics/{name}", value, global_step=nimg)
        if not diverged and tick % sch.snapshot_ticks == 0:
            grid = task.sample_grid()
            (run_dir / "samples").mkdir(exist_ok=True)
            # named by images shown, so sub-kimg ticks do not overwrite each other
            samples_path = run_dir / "samples" / f"nimg{nimg:09d}.png"
            for dest in (samples_path, run_dir / "samples.png"):
                with atomic_path(dest) as tmp:
                    grid.save(tmp)
            tb.add_image(
                "samples",
                np.asarray(grid),
                global_step=nimg,
                dataformats="HW" if grid.mode == "L" else "HWC",
            )
        history.append(metrics)
        if diverged:
            status = "diverged"
            log(f"diverged at {nimg / 1000:.1f} kimg (a loss became NaN or inf); trial ends")
            if report:
                report({**metrics, "resumed_from_kimg": resumed_kimg}, None)
            break
        if not best or _objective(metrics) <= _objective(best):
            best = metrics
        nets, opts, rng_noise = task.state()
        state = ckpt.TrainState(
            nets=nets,
            optimizers=opts,
            rng_noise=rng_noise,
            rng_torch=torch.get_rng_state(),
            nimg=nimg,
            tick=tick,
            epoch=data.epoch,
            batch=data.batch,
            model_meta=task.model_meta,
            task=task.name,
            metrics=metrics,
            history=history,
        )
        last_ckpt = ckpt.save_train_state(ckpt_dir / f"tick-{tick:05d}", state, cfg)
        _point_latest(ckpt_dir, last_ckpt)  # each tick, so an interrupted trial resumes
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        _prune(ckpt_dir, keep_checkpoints, best_tick=int(best["tick"]))
        if report:
            report({**metrics, "resumed_from_kimg": resumed_kimg}, last_ckpt)
        if progress:
            progress(nimg / 1000, sch.total_kimg, metrics)
        if should_stop and should_stop():
            status = "stopped"
            break
    tb.close()
    return TrialResult(status, metrics, best, run_dir, last_ckpt, samples_path, history)


def _flops_per_image(cfg: TrialConfig, shards: ShardSet, run_dir: Path) -> float:
    """The config's training FLOPs per image, counted once and cached in the run folder
    (a resumed or promoted trial does not count again)."""
    from fashion_tune.flops import flops_per_image

    cached = run_dir / FLOPS_FILE
    key = cfg.to_json()
    try:
        doc = json.loads(cached.read_text())
        if doc.get("config") == key and float(doc["flops_per_image"]) > 0:
            return float(doc["flops_per_image"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return flops_per_image(cfg, shards)


def _point_latest(ckpt_dir: Path, target: Path) -> None:
    """Re-point the ``latest`` link atomically (a new link renamed over the old one)."""
    tmp = ckpt_dir / f".latest.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)
    os.replace(tmp, ckpt_dir / "latest")


def _objective(row: dict[str, Any]) -> float:
    """A tick's objective for 'best' (NaN and rows scored before it existed sort last)."""
    value = row.get(OBJECTIVE)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def _prune(ckpt_dir: Path, keep: int, best_tick: int) -> None:
    """Keep the newest ``keep`` checkpoints and the best one."""
    ticks = sorted(p for p in ckpt_dir.glob("tick-*") if p.is_dir())
    for p in ticks[:-keep] if keep > 0 else ticks:
        if p.name != f"tick-{best_tick:05d}":
            shutil.rmtree(p, ignore_errors=True)
