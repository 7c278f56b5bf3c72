"""The report page in a real headless Chromium, built from an experiment full of HTML.

A copy of the tiny experiment gets ``<script>`` in a trial's params and config, a trial
folder and the experiment folder named with markup, so one page load checks both that
the page works (no console errors, every image loaded, a non-blank screenshot) and that
every user-controlled string is shown as text. The leaderboard's sorting and filtering
are clicked through in the same browser, on that page and on a 1,200-row one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_report import best_fd, copy_experiment, edit_state, result_rows, trial_dirs

CHROMIUM = "/usr/bin/chromium"
TEMPLATES = Path(__file__).resolve().parents[1] / "fashion_tune" / "report" / "templates"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"  # a folder name cannot hold "/"
TAG = "<i>exp"


@pytest.fixture(scope="module")
def injected(tiny_experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The report folder, and the built report (for pages made from it)."""
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
    report = build_report(str(exp), out, top_k=2)
    return out, report


@pytest.fixture(scope="module")
def injected_report(injected: tuple[Path, Any]) -> Path:
    return injected[0]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module's pages."""
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
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            env=env,
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, html: Path) -> tuple[Any, dict[str, Any]]:
    """A new page showing ``html``, and what it logs: console messages, page errors,
    failed requests, dialogs (dismissed)."""
    found: dict[str, Any] = {"console": [], "pageerror": [], "requestfailed": [], "dialog": []}
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.on("console", lambda m: found["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: found["pageerror"].append(str(e)))
    page.on("requestfailed", lambda r: found["requestfailed"].append(r.url))

    def on_dialog(d: Any) -> None:
        found["dialog"].append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.goto(html.as_uri(), wait_until="load")
    return page, found


def assert_quiet(found: dict[str, Any]) -> None:
    errors = [t for kind, t in found["console"] if kind in ("error", "warning")]
    assert errors == [] and found["pageerror"] == [], (found["console"], found["pageerror"])
    assert found["requestfailed"] == [] and found["dialog"] == []


@pytest.fixture(scope="module")
def page_result(injected_report: Path, chromium: Any) -> dict:
    page, found = open_page(chromium, injected_report / "index.html")
    try:
        found["images"] = page.evaluate(
            "Array.from(document.images).map(i => "
            "({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))"
        )
        found["scripts"] = page.evaluate("Array.from(document.scripts, s => s.textContent)")
        found["text"] = page.evaluate("document.body.textContent")
        found["title"] = page.title()
        found["png"] = page.screenshot(full_page=True)
    finally:
        page.close()
    return found


def test_page_loads_cleanly(page_result: dict, injected_report: Path):
    assert_quiet(page_result)
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
    # the one script is the leaderboard's own, static code: no user string made it in
    scripts = page_result["scripts"]
    assert page_result["dialog"] == [] and len(scripts) == 1
    template = (TEMPLATES / "index.html.j2").read_text()
    static = template.split("{% raw %}")[1].split("{% endraw %}")[0]
    assert scripts[0] == static and "getElementById" in static
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


# -- the leaderboard: sorting and filtering in the page ----------------------------------------
MISSING = {"", "\u2013", "\u2014", "missing", "NaN"}  # cells with no value: sorted last
ROWS = "#leaderboard tbody tr"


def headers(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard thead th", "ths => ths.map(t => t.textContent.trim())"
    )


def shown_rows(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(
        ROWS + ":not([hidden])", "rs => rs.map(r => Array.from(r.cells, c => c.textContent.trim()))"
    )


def click_header(page: Any, label: str) -> str:
    """Click column ``label``'s sort button; its aria-sort afterwards."""
    th = page.locator("#leaderboard thead th").nth(headers(page).index(label))
    th.locator("button").click()
    return th.get_attribute("aria-sort")


def assert_sorted(cells: list[str], descending: bool) -> None:
    """Numbers in Python's order, missing values after all of them."""
    present = [c for c in cells if c not in MISSING]
    assert cells[: len(present)] == present, cells  # missing last, in both directions
    values = [float(c) for c in present]
    assert values == sorted(values, reverse=descending), cells


def count_text(page: Any) -> str:
    return page.text_content("#leaderboard-count").strip()


def test_leaderboard_sorts_by_clicked_column(injected_report: Path, chromium: Any):
    doc = json.loads((injected_report / "leaderboard.json").read_text())
    n = len(doc["trials"])
    page, found = open_page(chromium, injected_report / "index.html")
    try:
        heads = headers(page)
        rank, best = heads.index("#"), heads.index("best fd")
        first = shown_rows(page)
        assert [r[1] for r in first] == [t["trial"] for t in doc["trials"]]  # rank order
        assert page.get_attribute("#leaderboard thead th", "aria-sort") == "ascending"
        assert count_text(page) == f"{n} of {n} trials shown"

        assert click_header(page, "best fd") == "ascending"
        rows = shown_rows(page)
        assert_sorted([r[best] for r in rows], descending=False)
        assert page.get_attribute("#leaderboard thead th", "aria-sort") is None  # moved
        assert click_header(page, "best fd") == "descending"
        rows = shown_rows(page)
        assert_sorted([r[best] for r in rows], descending=True)
        assert sorted(r[1] for r in rows) == sorted(r[1] for r in first)  # same rows, all shown

        # a conditional param: trials without it ("\u2013") last in both directions
        lam = heads.index("loss.lambda_sym")
        for descending in (False, True):
            click_header(page, "loss.lambda_sym")
            assert_sorted([r[lam] for r in shown_rows(page)], descending)
        # text: alphabetically, a second click reverses; the <script> value stays text
        sym = heads.index("loss.symmetry")
        assert click_header(page, "loss.symmetry") == "ascending"
        texts = [r[sym] for r in shown_rows(page)]
        assert texts == sorted(texts, key=str.lower) and SCRIPT in texts
        assert click_header(page, "loss.symmetry") == "descending"
        assert [r[sym] for r in shown_rows(page)] == sorted(texts, key=str.lower, reverse=True)
        assert click_header(page, "#") == "ascending"
        assert [r[rank] for r in shown_rows(page)] == [r[rank] for r in first]
        assert page.evaluate("document.scripts.length") == 1
    finally:
        page.close()
    assert_quiet(found)


def test_leaderboard_filters_by_text_and_outcome(injected_report: Path, chromium: Any):
    doc = json.loads((injected_report / "leaderboard.json").read_text())
    trials, n = doc["trials"], len(doc["trials"])
    page, found = open_page(chromium, injected_report / "index.html")
    try:
        assert page.is_visible("#leaderboard-filter")  # the script shows the controls
        sym = headers(page).index("loss.symmetry")
        page.fill("#leaderboard-filter", "<SCRIPT")  # case-insensitive, over the whole row
        rows = shown_rows(page)
        assert len(rows) == 1 and rows[0][sym] == SCRIPT
        assert count_text(page) == f"1 of {n} trials shown"
        click_header(page, "loss.symmetry")  # sorting keeps the filter
        assert shown_rows(page) == rows and page.evaluate("document.scripts.length") == 1
        name = trials[-1]["trial"]
        page.fill("#leaderboard-filter", name.upper())
        assert [r[1] for r in shown_rows(page)] == [name]
        page.fill("#leaderboard-filter", "no trial has this text")
        assert shown_rows(page) == [] and count_text(page) == f"0 of {n} trials shown"
        page.fill("#leaderboard-filter", "")
        assert len(shown_rows(page)) == n and count_text(page) == f"{n} of {n} trials shown"

        options = page.eval_on_selector_all(
            "#leaderboard-outcome option", "os => os.map(o => o.value)"
        )
        outcomes = sorted({t["outcome"] for t in trials})
        assert options == ["", *outcomes]  # the outcomes present, and "all"
        for outcome in outcomes:
            page.select_option("#leaderboard-outcome", outcome)
            want = [t["trial"] for t in trials if t["outcome"] == outcome]
            assert sorted(r[1] for r in shown_rows(page)) == sorted(want), outcome
            assert count_text(page) == f"{len(want)} of {n} trials shown"
        # both filters at once
        page.fill("#leaderboard-filter", trials[0]["trial"])
        page.select_option("#leaderboard-outcome", trials[0]["outcome"])
        assert [r[1] for r in shown_rows(page)] == [trials[0]["trial"]]
        other = [o for o in outcomes if o != trials[0]["outcome"]]
        if other:
            page.select_option("#leaderboard-outcome", other[0])
            assert shown_rows(page) == []
        page.select_option("#leaderboard-outcome", "")
        page.fill("#leaderboard-filter", "")
        assert len(shown_rows(page)) == n
        assert SCRIPT in page.evaluate("document.body.textContent")
    finally:
        page.close()
    assert_quiet(found)


def many_entries(entries: list[Any], n: int) -> list[Any]:
    """``n`` made-up leaderboard entries from real ones: random values, some missing, every
    outcome; ranked by best."""
    from fashion_tune.report.rank import Entry

    rnd = random.Random(0)
    out: list[Entry] = []
    for i in range(n):
        e = entries[i % len(entries)]
        outcome = rnd.choice(
            ["finished", "stopped", "stopped", "diverged", "errored", "unfinished"]
        )
        params = dict(e.trial.params)
        params["optim.lr_g"] = rnd.choice(
            [10 ** rnd.uniform(-5, -2), 10 ** rnd.uniform(-5, -2), None]
        )
        params["loss.symmetry"] = rnd.choice(["none", "pixel", "consistency", SCRIPT])
        best = None if outcome == "errored" else 10 ** rnd.uniform(-1, 3)
        trial = dataclasses.replace(
            e.trial, trial_id=f"s{i:05d}", folder=f"trial_s{i:05d}", params=params
        )
        last = best * 1.5 if best is not None else None
        out.append(Entry(trial, best, e.best_row, last, rnd.uniform(0, 10), outcome, None))
    out.sort(key=lambda e: math.inf if e.best is None else e.best)
    for rank, e in enumerate((e for e in out if e.best is not None), 1):
        e.rank = rank
    return out


def test_leaderboard_sorts_and_filters_1200_rows(
    injected: tuple[Path, Any], chromium: Any, tmp_path: Path
):
    from fashion_tune.report.render import write_html

    out, report = injected
    n = 1200
    big = dataclasses.replace(
        report, out=tmp_path, work=None, top=[], entries=many_entries(report.entries, n)
    )
    shutil.copytree(out / "images", tmp_path / "images")
    write_html(big)
    page, found = open_page(chromium, tmp_path / "index.html")
    timed = """([col, q, o]) => {
        const t = performance.now();
        if (col !== null) document.querySelectorAll('#leaderboard thead button')[col].click();
        if (q !== null) {
            const f = document.getElementById('leaderboard-filter');
            f.value = q; f.dispatchEvent(new Event('input'));
        }
        if (o !== null) {
            const s = document.getElementById('leaderboard-outcome');
            s.value = o; s.dispatchEvent(new Event('change'));
        }
        document.body.offsetHeight;  // the reflow counts too
        return performance.now() - t;
    }"""
    try:
        heads = headers(page)
        best, lr = heads.index("best fd"), heads.index("optim.lr_g")
        assert count_text(page) == f"{n} of {n} trials shown"
        times = {}
        for what, args, col, descending in (
            ("sort best", [best, None, None], best, False),
            ("reverse best", [best, None, None], best, True),
            ("sort lr", [lr, None, None], lr, False),
            ("reverse lr", [lr, None, None], lr, True),
        ):
            times[what] = page.evaluate(timed, args)
            rows = shown_rows(page)
            assert len(rows) == n
            assert_sorted([r[col] for r in rows], descending)
        times["filter"] = page.evaluate(timed, [None, "script", None])
        want = sum(e.trial.params["loss.symmetry"] == SCRIPT for e in big.entries)
        assert count_text(page) == f"{want} of {n} trials shown"
        times["outcome"] = page.evaluate(timed, [None, None, "diverged"])
        both = sum(
            e.trial.params["loss.symmetry"] == SCRIPT and e.outcome == "diverged"
            for e in big.entries
        )
        assert len(shown_rows(page)) == both
        times["clear"] = page.evaluate(timed, [None, "", ""])
        assert len(shown_rows(page)) == n
        assert page.evaluate("document.scripts.length") == 1
    finally:
        page.close()
    assert_quiet(found)
    # timings are printed, never asserted (a test holds no timing threshold): 0.1-2 s each
    # on 2 shared cores, mostly the table's reflow
    print("leaderboard at", n, "rows, ms:", {k: round(v) for k, v in times.items()})
