"""``report.md``: the same content as the page, for a repository or a terminal."""

from __future__ import annotations

import re
from typing import Any

from fashion_tune.report.model import Report

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md(text: Any) -> str:
    """A user string made inert in Markdown (and in the HTML some renderers allow)."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s).replace("\r", " ").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def _fence(text: str) -> list[str]:
    return ["~~~~text", text.replace("~~~~", "~ ~ ~ ~"), "~~~~", ""]


def write_markdown(report: Report, c: dict[str, Any]) -> None:
    better = "lower" if c["mode"] == "min" else "higher"
    lines = [
        f"# fashion-tune report: {md(c['name'])}",
        "",
        f"Experiment {md(c['location'])}; ranked by **{md(c['metric'])}** "
        f"({better} is better), best value over all ticks; written {c['created']}.",
        "",
    ]
    if c["warnings"]:
        lines += ["**Missing or incomplete** (the report shows what exists):", ""]
        lines += [f"- {md(w)}" for w in c["warnings"]] + [""]
    lines += ["## All trials", "", f"![{md(c['metric'])} vs kimg]({c['curves_all']})", ""]
    head = ["#", "trial", "outcome", f"best {c['metric']}", "at kimg", f"last {c['metric']}"]
    head += [f"{m} @best" for m in c["side_metrics"]] + ["kimg run", *c["param_keys"]]
    rows = [
        [b["rank"], b["name"], b["outcome"], b["best"], b["best_kimg"], b["last"], *b["side"],
         b["kimg"], *b["params"]]
        for b in c["board"]
    ]  # fmt: skip
    lines += _table(head, rows)
    lines += [f"## Top {len(c['top'])}", ""]
    for t in c["top"]:
        lines += [f"### #{t['rank']} {md(t['name'])}: {md(c['metric'])} {t['best']}", ""]
        pics = []
        if t["samples"]:
            pics.append(f"![generated]({t['samples']})")
        else:
            lines.append(f"No samples: {md(t['samples_msg'])}")
        if t["real"]:
            pics.append(f"![real]({t['real']})")
        else:
            lines.append(f"No real images: {md(t['real_msg'])}")
        lines += [" ".join(pics), "", f"![curves]({t['curves']})", ""]
        lines += _table(["", "value"], [*t["numbers"], *t["params"]])
        if t["export"]:
            lines += [f"Best checkpoint ({md(t['checkpoint_note'])}):", "", *_fence(t["command"])]
        else:
            lines += [f"No exported checkpoint: {md(t['export_msg'])}", ""]
    lines += _confirmation(c["confirm"])
    lines += _ablations(c["ablations"], c["ablate_command"])
    lines += ["## Quality vs symmetry", ""]
    if c["pareto_img"]:
        lines += [f"![pareto]({c['pareto_img']})", "", "Pareto front:", ""]
        lines += _table(["#", "trial", c["quality"], c["symmetry"]], [list(f) for f in c["front"]])
    imp = c["importance"]
    lines += ["## Parameter importance", "", md(imp["about"]), ""]
    if c["importance_img"]:
        lines += [f"![importance]({c['importance_img']})", ""]
        lines += _table(["parameter", "importance"], [list(v) for v in imp["scores"]])
    if imp["message"]:
        lines += [md(imp["message"]), ""]
    if imp["left_out"]:
        lines += ["Left out: " + ", ".join(f"{md(k)} ({md(w)})" for k, w in imp["left_out"]), ""]
    lines += ["## Early stopping (ASHA)", "", f"![asha]({c['asha_img']})", ""]
    lines += _table(["", "value"], [list(r) for r in c["asha"]["rows"]])
    if c["asha"]["rungs"]:
        rung_head = f"rung ({c['asha']['unit']})"
        lines += _table([rung_head, "reached", "promoted", "ended there"], c["asha"]["rungs"])
    lines += [md(n) + "\n" for n in c["asha"]["notes"]]
    if c["errors"]:
        lines += ["## Errors", ""]
        for name, _, text in c["errors"]:
            lines += [f"### {md(name)}", "", *_fence(text)]
    (report.folder / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _confirmation(c: dict[str, Any]) -> list[str]:
    lines = ["## Seed confirmation", ""]
    if not c["present"]:
        lines += [
            "No seed confirmation in this experiment: retrain the top configs and the "
            f"literature default with fresh seeds: `{md(c['command'])}`.",
            "",
        ]
        return lines + [f"- {md(n)}" for n in c["notes"]] + ([""] if c["notes"] else [])
    lines += [f"**{md(c['verdict'])}**", "", md(c["about"]), ""]
    lines += [f"- {md(n)}" for n in [*c["status"], *c["notes"]]]
    lines += [""] if c["status"] or c["notes"] else []
    head = ["#", "config", "search trial", *[f"seed {s}" for s in c["seeds"]]]
    head += [f"mean {c['metric']}", "95% interval", "finished"]
    rows = [
        [r["rank"], r["label"], r["source"], *[t for t, _ in r["values"]], r["mean"],
         r["interval"], r["n"]]
        for r in c["rows"]
    ]  # fmt: skip
    return lines + _table(head, rows)


def _ablations(abls: list[dict[str, Any]], command: str) -> list[str]:
    lines = ["## Ablation", ""]
    if not abls:
        lines.append(
            "No ablation in this experiment: does one setting matter beyond seed noise? "
            f"`{md(command)}`."
        )
        return [*lines, ""]
    for a in abls:
        lines += [f"### {md(a['title'])}", ""]
        lines += [f"- **{md(t)}**" for t in a["sentences"]]
        lines += [""] if a["sentences"] else []
        lines += [md(a["about"]), "", md(a["speed"]), ""]
        lines += [f"- {md(n)}" for n in [*a["status"], *a["notes"]]]
        lines += [""] if a["status"] or a["notes"] else []
        head = ["value", "finished", "objective [95% CI]", "sym_excess [95% CI]",
                "improvement vs base [95% CI]", "d_z", "paired t p (Holm)",
                "Wilcoxon p (Holm)", "kimg to threshold", "GFLOP to threshold", "reached",
                "speed vs base"]  # fmt: skip
        rows = [
            [r["label"], r["n"], r["objective"], r["sym"], r["diff"], r["dz"], r["p_t"],
             r["p_w"], r["speed_kimg"], r["speed_gflop"], r["reached"], r["speed_test"]]
            for r in a["rows"]
        ]  # fmt: skip
        lines += _table(head, rows)
        f = a["figures"]
        for key in ("paired", "speed"):
            if f.get(key):
                lines += [f"![{key}]({f[key]})", ""]
        pics = [f"![{md(label)}]({path})" for label, path in f.get("samples", []) if path]
        if pics:
            lines += [" ".join(pics), ""]
    return lines
