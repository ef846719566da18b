"""The report's files: results.json, results.md (Markdown tables) and chart.png (Nexus vs peers, as ratios)."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from .harness import BenchmarkResult, format_number

__all__ = ["machine", "write_outputs"]


def machine() -> dict[str, Any]:
    """What the figures came from."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = 0.0
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": model or "unknown",
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def markdown(results: dict[str, BenchmarkResult], notes: list[str], quick: bool) -> str:
    m = machine()
    out = [
        "# Benchmarks",
        "",
        f"{m['date']}, {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, Python {m['python']}, {m['system']}"
        + (" (--quick: a smoke run, not figures to quote)" if quick else ""),
        "",
    ]
    for result in results.values():
        with_peer = any(f.peer is not None for f in result.figures)
        out += [f"## {result.name}: {result.title}", ""]
        head = ["figure", "Nexus"] + ([result.peer_label, "ratio"] if with_peer else []) + ["target", "met"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for f in result.figures:
            unit = f" {f.unit}" if f.unit else ""
            row = [f.label, format_number(f.nexus) + unit]
            if with_peer:
                row += [format_number(f.peer) + unit if f.peer is not None else "-", f"{f.ratio:.1f}x" if f.ratio else "-"]
            row += [f.target.describe(result.peer_label) if f.target else "-", {True: "yes", False: "no", None: "-"}[f.met]]
            out.append("| " + " | ".join(row) + " |")
        out += ["", f"Method: {result.method}", ""] if result.method else [""]
    if notes:
        out += ["## Against the limits of this machine", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def chart(results: dict[str, BenchmarkResult], path: Path, quick: bool) -> bool:
    """A horizontal bar per figure with a peer: Nexus / peer on a log axis, the target marked. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = []
    for result in results.values():
        for f in result.figures:
            if f.ratio:
                target = f.target.value if f.target and f.target.kind == "ratio" else None
                rows.append((f"{f.label} (vs {result.peer_label})", f.ratio, target, f.met))
    if not rows:
        return False
    rows.reverse()
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(rows) + 1.6))
    colors = ["#4a90d9" if met is not False else "#e8a33d" for _, _, _, met in rows]
    ax.barh(range(len(rows)), [r for _, r, _, _ in rows], color=colors)
    for i, (_, ratio, target, _met) in enumerate(rows):
        if target:
            ax.plot([target, target], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
        ax.text(ratio * 1.05, i, f"{ratio:.1f}x", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _, _, _ in rows], fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1, color="grey", linewidth=0.8)
    m = machine()
    ax.set_xlabel("Nexus / peer (higher is better; black marks: targets; orange: target not met)")
    ax.set_title(
        f"Nexus vs peers, {m['date']}, {m['cores']} cores, Python {m['python']}" + (" (--quick)" if quick else ""), fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_outputs(
    directory: Path, document: dict[str, Any], results: dict[str, BenchmarkResult], notes: list[str], quick: bool
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "results.json", directory / "results.md"]
    (directory / "results.json").write_text(json.dumps({**document, "machine": machine(), "limits": notes}, indent=2, allow_nan=False))
    (directory / "results.md").write_text(markdown(results, notes, quick))
    if chart(results, directory / "chart.png", quick):
        written.append(directory / "chart.png")
    return written
