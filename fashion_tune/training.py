"""The GAN training loop. It knows nothing about Ray: it takes callbacks.

``train(cfg, run_dir, report=..., should_stop=...)`` trains one GAN, counting
progress in kimg (thousands of real images shown to D). Once per tick it
evaluates fd / kid / sym_gap, writes a checkpoint, calls ``report(metrics,
checkpoint_dir)`` (the metrics plus ``resumed_from_kimg``, where this run resumed) and
asks ``should_stop()``. ``fashion-tune trial`` calls it
directly; the Ray Tune trainable adapts the callbacks to ``tune.report``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_tune import checkpoint as ckpt
from fashion_tune.atomic import atomic_path, write_text
from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.errors import ConfigError
from fashion_tune.grids import make_grid
from fashion_tune.losses import d_loss, flip, g_loss, penalty, symmetry_loss
from fashion_tune.metrics import reference as metric_reference
from fashion_tune.metrics.evaluate import OBJECTIVE, Evaluator, nan_scores
from fashion_tune.models import Discriminator, Generator, build_discriminator, build_generator
from fashion_tune.sampling import fixed_noise, generate

ReportFn = Callable[[dict[str, Any], "Path | None"], None]
GRID_COLS = 8


@dataclass
class TrialResult:
    status: str  # "finished", "stopped" (should_stop said so) or "diverged"
    metrics: dict[str, Any]  # the last report
    best: dict[str, Any]  # the report with the best objective (lowest fd)
    run_dir: Path
    checkpoint: Path | None  # the latest checkpoint
    samples: Path | None  # the latest sample grid
    history: list[dict[str, Any]] = field(default_factory=list)


def select_device(want: str) -> torch.device:
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("runtime.device is 'cuda' but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def build_models(cfg: TrialConfig, shards: ShardSet) -> tuple[Generator, Discriminator]:
    """G and D for ``cfg`` on this shard set (size, channels and classes come from it)."""
    m = cfg.model
    num_classes = shards.num_classes if cfg.data.conditional and shards.num_classes > 1 else 0
    # resnet counts residual blocks per stage (>= 1); the config counts extra depth
    extra = 1 if m.arch == "resnet" else 0
    G = build_generator(
        m.arch,
        img_size=shards.image_size,
        channels=shards.channels,
        z_dim=m.z_dim,
        num_classes=num_classes,
        width=m.g_width,
        depth=m.g_depth + extra,
    )
    D = build_discriminator(
        m.arch,
        img_size=shards.image_size,
        channels=shards.channels,
        num_classes=num_classes,
        width=m.d_width,
        depth=m.d_depth + extra,
        norm=m.d_norm,
    )
    return G, D


def rebuild_generator(state: dict[str, Any], cfg: TrialConfig, key: str = "G_ema") -> Generator:
    """A checkpoint's generator, from the checkpoint alone (no shard set needed)."""
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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


def _label_freq(shards: ShardSet, split: str, num_classes: int) -> np.ndarray | None:
    if num_classes == 0:
        return None
    counts = np.bincount(shards.labels[shards.split_indices(split)], minlength=num_classes)
    return counts / counts.sum()


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
    rt, sch, opt_cfg, loss_cfg = cfg.runtime, cfg.schedule, cfg.optim, cfg.loss

    # -- setup: determinism, device, data, models ------------------------------------------
    if rt.threads:
        torch.set_num_threads(rt.threads)
    torch.manual_seed(rt.seed)
    device = select_device(rt.device)
    on_cuda = device.type == "cuda"
    if on_cuda and rt.gpu_mem_frac:
        torch.cuda.set_per_process_memory_fraction(rt.gpu_mem_frac, device)
    use_bf16 = rt.amp == "bf16" or (rt.amp == "auto" and on_cuda)
    channels_last = rt.channels_last == "on" or (rt.channels_last == "auto" and on_cuda)
    mem_format = torch.channels_last if channels_last else torch.contiguous_format
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext
    )

    shards = ShardSet(cfg.data.path)
    stream = ShardBatches(
        shards, split=cfg.data.split, batch_size=cfg.data.batch_size, seed=rt.seed
    )
    G, D = build_models(cfg, shards)
    G, D = G.to(device), D.to(device)
    G, D = G.to(memory_format=mem_format), D.to(memory_format=mem_format)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    betas = (opt_cfg.beta1, opt_cfg.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=opt_cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=opt_cfg.lr_d, betas=betas)
    noise_gen = torch.Generator(device=device).manual_seed(rt.seed + 1)
    num_classes = G.num_classes
    model_meta = {
        "img_size": G.img_size,
        "channels": G.channels,
        "num_classes": num_classes,
        "classes": shards.classes if num_classes else [],
    }

    nimg, tick, data_pos = 0, 0, (0, 0)
    resumed_kimg = 0.0  # told to report() each tick (not a metric: kept out of the history)
    history: list[dict[str, Any]] = []
    if resume is not None:
        state, _ = ckpt.load(resume, map_location=device)
        missing = [
            k for k in ("D", "G_ema", "opt_g", "opt_d", "rng_noise", "nimg") if k not in state
        ]
        if missing:
            raise ckpt.CheckpointError(
                f"{ckpt.resolve(resume)} cannot be resumed: it lacks {', '.join(missing)} "
                "(an exported checkpoint holds only what sampling needs)"
            )
        for net, key in ((G, "G"), (D, "D"), (G_ema, "G_ema")):
            _load_weights(net, state[key], key, cfg)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        noise_gen.set_state(state["rng_noise"].cpu() if not on_cuda else state["rng_noise"])
        torch.set_rng_state(state["rng_torch"].cpu())
        nimg, tick = int(state["nimg"]), int(state["tick"])
        resumed_kimg = nimg / 1000
        data_pos = (int(state["epoch"]), int(state["batch"]))
        history = json.loads(state.get("history", "[]"))
        log(f"resumed from {ckpt.resolve(resume)} at {nimg / 1000:.1f} kimg (tick {tick})")
    data = _Data(stream, *data_pos)

    if rt.compile:
        G_step: torch.nn.Module = torch.compile(G)  # type: ignore[assignment]
        D_step: torch.nn.Module = torch.compile(D)  # type: ignore[assignment]
    else:
        G_step, D_step = G, D

    # written once the data, the models and any resume state are known to be usable, so a
    # user error leaves no run folder behind
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.json", cfg.to_json())
    if resume is not None:  # the log restarts from the checkpoint: no tick twice, none lost
        write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
    # the reference is made before any trial (data prepare / data reference / search):
    # a trial only loads it, so every trial on every node scores with the same ruler
    ref = metric_reference.load(cfg.metrics.reference or cfg.data.path, shards)
    inception = None
    if cfg.metrics.inception:
        from fashion_tune.metrics.inception import InceptionMetric, inception_cache_dir

        n_inc = min(cfg.metrics.inception_samples, cfg.metrics.num_samples)
        inception = InceptionMetric(shards, n_inc, inception_cache_dir(shards), str(device))
    evaluator = Evaluator(
        ref, cfg.metrics, G.z_dim, _label_freq(shards, cfg.data.split, num_classes), inception
    )
    grid_rows = min(num_classes, 10) if num_classes else 8
    grid_z = fixed_noise(grid_rows * GRID_COLS, G.z_dim, rt.seed + 7)
    grid_y = torch.arange(grid_rows).repeat_interleave(GRID_COLS) if num_classes else None
    from tensorboardX import SummaryWriter

    tb = SummaryWriter(str(run_dir / "tb"))
    total_nimg = round(sch.total_kimg * 1000)
    tick_nimg = max(1, round(sch.tick_kimg * 1000))
    B = cfg.data.batch_size
    lam = loss_cfg.lambda_sym if loss_cfg.symmetry != "none" else 0.0

    def real_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = next(batches)
        x = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
        x = x.contiguous(memory_format=mem_format)
        if cfg.data.flip_aug:
            mask = torch.rand(len(x), device=device, generator=noise_gen) < 0.5
            x = torch.where(mask[:, None, None, None], flip(x), x)
        return x, (labels.to(device) if num_classes else None)

    def d_update(
        x: torch.Tensor, y: torch.Tensor | None, keep_fake: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(len(x), G.z_dim, device=device, generator=noise_gen)
        with torch.set_grad_enabled(keep_fake), autocast():
            fake = G_step(z, y)
        with autocast():
            loss = d_loss(loss_cfg.gan, D_step(x, y), D_step(fake.detach(), y))
            if loss_cfg.penalty != "none":
                loss = loss + loss_cfg.penalty_weight * penalty(
                    loss_cfg.penalty, D_step, x, fake.detach(), y
                )
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return loss.detach(), fake

    def g_update(
        fake: torch.Tensor | None, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        D.requires_grad_(False)  # G's step needs no weight gradients of D
        with autocast():
            if fake is None:
                z = torch.randn(B, G.z_dim, device=device, generator=noise_gen)
                fake = G_step(z, y)
            logits = D_step(fake, y)
            loss = g_loss(loss_cfg.gan, logits)
            sym = (
                symmetry_loss(loss_cfg.symmetry, D_step, fake, logits, y, loss_cfg.gan)
                if lam > 0
                else torch.zeros((), device=device)
            )
            total = loss + lam * sym
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        D.requires_grad_(True)
        return loss.detach(), sym.detach()

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
        sums = torch.zeros(3, device=device)  # d loss, g loss, sym loss (summed over steps)
        steps = 0
        next_tick = min(total_nimg, (nimg // tick_nimg + 1) * tick_nimg)
        while nimg < next_tick:
            for _ in range(opt_cfg.n_disc):
                x, y = real_batch()
                # one G forward per step when n_disc == 1 (pytorch/examples update order)
                keep = opt_cfg.n_disc == 1
                ld, fake = d_update(x, y, keep_fake=keep)
                nimg += len(x)
            lg, ls = g_update(fake if keep else None, y)
            sums += torch.stack([ld, lg, ls])
            steps += 1
            _ema_nimg = opt_cfg.ema_kimg * 1000
            if opt_cfg.ema_kimg > 0:
                if opt_cfg.ema_rampup > 0:
                    _ema_nimg = min(_ema_nimg, nimg * opt_cfg.ema_rampup)
                _ema_update(G_ema, G, 0.5 ** (B / max(_ema_nimg, 1e-8)))
            else:
                _ema_update(G_ema, G, 0.0)
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
        scores = (
            evaluator(G_ema) if not diverged else {**nan_scores(), "metric_ref": evaluator.ruler}
        )
        eval_s = time.perf_counter() - t1
        metrics = {
            "kimg": nimg / 1000,
            "tick": tick,
            **scores,
            "loss/d": means[0],
            "loss/g": means[1],
            "loss/sym": means[2],
            "img_per_s": (nimg - tick_start) / max(train_s, 1e-9),
            "eval_frac": eval_s / max(train_s + eval_s, 1e-9),
            "diverged": int(diverged),
            "featnet_acc": ref.accuracy,
        }
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                tb.add_scalar(name if "/" in name else f"metrics/{name}", value, global_step=nimg)
        if not diverged and tick % sch.snapshot_ticks == 0:
            grid = make_grid(
                generate(G_ema, grid_z, grid_y), nrow=GRID_COLS, scale=max(1, 64 // G.img_size)
            )
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
        state = {
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": G_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng_noise": noise_gen.get_state(),
            "rng_torch": torch.get_rng_state(),
            "nimg": nimg,
            "tick": tick,
            "epoch": data.epoch,
            "batch": data.batch,
            "model_meta": model_meta,
            "metrics": json.dumps(metrics),
            "history": json.dumps(history),
        }
        last_ckpt = ckpt.save(ckpt_dir / f"tick-{tick:05d}", state, cfg)
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
