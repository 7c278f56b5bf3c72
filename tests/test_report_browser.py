"""The report page in a real headless Chromium, built from an experiment full of HTML.

A copy of the tiny experiment gets ``<script>`` in a trial's params and config, a trial
folder and the experiment folder named with markup, so one page load checks both that
the page works (no console errors, every image loaded, a non-blank screenshot) and that
every user-controlled string is shown as text.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_report import best_fd, copy_experiment, edit_state, result_rows, trial_dirs

CHROMIUM = "/usr/bin/chromium"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"  # a folder name cannot hold "/"
TAG = "<i>exp"


@pytest.fixture(scope="module")
def injected_report(tiny_experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fashion_tune.report import build_report

    base = tmp_path_factory.mktemp("inject")
    exp = copy_experiment(tiny_experiment, base / f"{TAG} {IMG}")
    top = min(trial_dirs(exp), key=lambda p: best_fd(result_rows(p)))
    params = json.loads((top / "params.json").read_text())
    params["loss.symmetry"] = SCRIPT
    (top / "params.json").write_text(json.dumps(params))
    config = json.loads((top / "config.json").read_text())
    config["model"]["arch"] = SCRIPT
    (top / "config.json").write_text(json.dumps(config))
    renamed = top.with_name(f"{top.name}{IMG}")
    top.rename(renamed)
    edit_state(exp, top.name.removeprefix("trial_"), relative_logdir=renamed.name)
    out = base / "out"
    build_report(str(exp), out, top_k=2)
    return out


@pytest.fixture(scope="module")
def page_result(injected_report: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # CI installs it: a missing browser is a broken set-up there
            pytest.fail(f"no Chromium at {CHROMIUM}: scripts/setup.sh should have installed it")
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs it)")
    from playwright import sync_api

    home = tmp_path_factory.mktemp("chromium-home")
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    found: dict[str, Any] = {"console": [], "pageerror": [], "requestfailed": [], "dialog": []}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            env=env,
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: found["console"].append((m.type, m.text)))
            page.on("pageerror", lambda e: found["pageerror"].append(str(e)))
            page.on("requestfailed", lambda r: found["requestfailed"].append(r.url))

            def on_dialog(d: Any) -> None:
                found["dialog"].append(d.message)
                d.dismiss()

            page.on("dialog", on_dialog)
            page.goto((injected_report / "index.html").as_uri(), wait_until="load")
            found["images"] = page.evaluate(
                "Array.from(document.images).map(i => "
                "({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))"
            )
            found["scripts"] = page.evaluate("document.scripts.length")
            found["text"] = page.evaluate("document.body.textContent")
            found["title"] = page.title()
            found["png"] = page.screenshot(full_page=True)
        finally:
            browser.close()
    return found


def test_page_loads_cleanly(page_result: dict, injected_report: Path):
    errors = [t for kind, t in page_result["console"] if kind in ("error", "warning")]
    assert errors == [] and page_result["pageerror"] == [], page_result["console"]
    assert page_result["requestfailed"] == []
    images = page_result["images"]
    assert len(images) >= 8  # curves, pareto, asha, importance, 2 x (samples, real, curves)
    assert all(i["ok"] for i in images), [i for i in images if not i["ok"]]
    srcs = [i["src"] for i in images]
    assert all(not s.startswith(("http", "/")) for s in srcs), srcs  # inside the folder
    assert all((injected_report / s).is_file() for s in srcs)
    from PIL import Image, ImageStat

    shot = Image.open(io.BytesIO(page_result["png"])).convert("L")
    assert shot.height > 2000
    assert ImageStat.Stat(shot).stddev[0] > 20  # pictures and text, not a blank page


def test_user_strings_show_as_text(page_result: dict, injected_report: Path):
    assert page_result["dialog"] == [] and page_result["scripts"] == 0
    text = page_result["text"]
    assert SCRIPT in text  # the param and the config value, as text
    assert IMG in text  # the trial folder and experiment path, as text
    assert TAG in text  # the experiment's path
    html = (injected_report / "index.html").read_text()
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (injected_report / "report.md").read_text()
    assert SCRIPT not in md and IMG not in md
    # file names made from the trial name are safe
    exports = list((injected_report / "checkpoints").iterdir())
    assert exports and all("<" not in p.name for p in exports)
