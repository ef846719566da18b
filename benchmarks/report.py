"""Turning results into human tables and into the one JSON object of ``--json``."""

from __future__ import annotations

from typing import Any

from .harness import BenchmarkResult, format_number

__all__ = ["error_table", "json_document", "render_table"]


def _met_text(met: bool | None, peer_label: str, has_target: bool) -> str:
    if not has_target:
        return "-"
    if met is None:
        return f"n/a (no {peer_label})"
    return "yes" if met else "NO"


def render_table(result: BenchmarkResult) -> str:
    """A text table of one benchmark: figure, Nexus, peer, ratio, target, met; then method and notes."""
    with_peer = result.peer_available and any(figure.peer is not None for figure in result.figures)
    headings = ["figure", "Nexus"]
    if with_peer:
        headings += [result.peer_label, "ratio"]
    headings += ["target", "met"]
    rows: list[list[str]] = []
    for figure in result.figures:
        unit = f" {figure.unit}" if figure.unit else ""
        row = [figure.label, format_number(figure.nexus) + unit]
        if with_peer:
            peer = figure.peer
            ratio = figure.ratio
            row += [
                format_number(peer) + unit if peer is not None else "-",
                f"{ratio:.1f}x" if ratio is not None else "-",
            ]
        target = figure.target
        row += [
            target.describe(result.peer_label) if target else "-",
            _met_text(figure.met, result.peer_label, target is not None),
        ]
        rows.append(row)
    numeric = {1, 2, 3} if with_peer else {1}
    widths = [max(len(line[i]) for line in [headings, *rows]) for i in range(len(headings))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [f"== {result.name}: {result.title}"]
    if result.environment:
        out.append("   " + ", ".join(f"{key} {value}" for key, value in result.environment.items()))
    out.append("")
    out.append(line(headings))
    out.append(line(["-" * w for w in widths]))
    out.extend(line(row) for row in rows)
    out.append("")
    if result.method:
        out.append(f"method: {result.method}")
    if not result.peer_available:
        extra = "ray" if result.peer == "ray" else "bench"
        out.append(f"{result.peer_label} is not importable: Nexus figures only (pip install -e '.[{extra}]' to compare).")
    out.extend(f"note: {note}" for note in [*result.spread_notes(), *result.notes])
    return "\n".join(out)


def error_table(name: str, error: BaseException) -> str:
    return f"== {name}: FAILED\n{type(error).__name__}: {error}"


def json_document(results: dict[str, Any], quick: bool, errors: dict[str, str]) -> dict[str, Any]:
    return {"quick": quick, "benchmarks": results, "errors": errors}
