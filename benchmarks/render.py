"""Write docs/performance.md from the results files in benchmarks/results/ (no figure typed by hand).

python benchmarks/render.py [--results DIR] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ORDER = ("core", "plan", "logging", "capture", "results", "slurm", "sync")

# The goals of the performance work: (benchmark, key of a derived figure or measurement, goal, the
# params the goal is stated at, comparison, limit, unit). The page shows each against the measured value.
# fmt: off
TARGETS: list[tuple[str, str, str, dict, str, float, str]] = [
    ("core", "sem_vs_sacred", "per-job overhead: trivial rows, sem / plain sacred loop", {"rows": 50}, "<=", 1.5, "x"),
    ("core", "sem_vs_sacred_cpu", "the same in CPU time (less disturbed by a busy machine)", {"rows": 50}, "<=", 1.5,
     "x"),
    ("core", "startup_ratio", "start-up: one-row run / bare Hydra one job", {}, "<=", 1.3, "x"),
    ("core", "startup_ratio_cpu", "the same in CPU time", {}, "<=", 1.3, "x"),
    ("core", "sem_memory_growth", "peak memory of a sequential sweep: 10,000 rows / 50 rows",
     {"memory_rows": [50, 10_000]}, "<=", 1.2, "x"),
    ("core", "sem_local_memory_growth", "the same with the local launcher (2 workers)",
     {"memory_rows": [50, 10_000]}, "<=", 1.2, "x"),
    ("plan", "sem_plan", "planning 100,000 rows", {"rows": 100_000}, "<", 2, "s"),
    ("plan", "cpu_sem", "the same in CPU time", {"rows": 100_000}, "<", 2, "s"),
    ("results", "sem_cached", "load_runs + results_table over 50,000 runs, cached", {"runs": 50_000}, "<", 2, "s"),
    ("results", "sem_cold", "load_runs + results_table over 50,000 runs, cold", {"runs": 50_000}, "<", 10, "s"),
    ("results", "sem_cached_cpu", "the same in CPU time", {"runs": 50_000}, "<", 2, "s"),
    ("results", "sem_cold_cpu", "cold, in CPU time", {"runs": 50_000}, "<", 10, "s"),
    ("results", "cold_vs_plain", "... faster than the plain pandas-over-json loop (cold)", {"runs": 50_000}, ">", 1,
     "x"),
    ("results", "cold_vs_plain_cpu", "the same in CPU time", {"runs": 50_000}, ">", 1, "x"),
    ("slurm", "sem_submit_only", "Slurm: submitting 10,000 rows with wait=false", {"submit_rows": 10_000}, "<", 5,
     "s"),
    ("slurm", "sem_submit_only_cpu", "the same in CPU time", {"submit_rows": 10_000}, "<", 5, "s"),
    ("slurm", "packed_peak_rss_ratio", "peak memory of a Slurm array task running packed configs: 10,000 / 50",
     {"memory_rows": [50, 10_000]}, "<=", 1.2, "x"),
    ("sync", "sem_live_per_job_marginal", "MongoDB: live sync adds per job", {}, "<=", 15, "ms"),
    ("sync", "sem_live_cpu_per_job_marginal", "the same in CPU time of the job side", {}, "<=", 15, "ms"),
    ("sync", "sem_live_work_per_job_marginal", "the same in CPU time of the job and the database server together",
     {}, "<=", 15, "ms"),
    ("sync", "noop_10000", "MongoDB: no-op re-sync of 10,000 runs", {}, "<", 2, "s"),
    ("sync", "cpu_noop_10000", "the same in CPU time of the command", {}, "<", 2, "s"),
    ("logging", "sem_added", "100,000 log_scalar calls add to a run", {"calls": 100_000}, "<", 0.15, "s"),
    ("logging", "sem_added_cpu", "the same in CPU time", {"calls": 100_000}, "<", 0.15, "s"),
]
# fmt: on
CHECKS = {"<": operator.lt, "<=": operator.le, ">": operator.gt}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.0f} ms" if abs(value) >= 0.01 else f"{value * 1000:.1f} ms"
    if unit in ("x",):
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    if abs(value) >= 10:
        return f"{value:.1f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


def value_of(result: dict, key: str) -> tuple[float | None, str]:
    if key in result.get("derived", {}):
        d = result["derived"][key]
        return d["value"], d["unit"]
    if key in result.get("measurements", {}):
        m = result["measurements"][key]
        return m["median"], m["unit"]
    return None, ""


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def environment_line(result: dict) -> str:
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    load = env.get("load_average_start", [None])[0]
    load_end = env.get("load_average_end", [None])[0]
    return (
        f"Measured {env['date']} on commit `{env['git_commit'][:12]}`; {env['cpu_count']} x {env['cpu_model']}, "
        f"{env['memory_total_mb'] / 1024:.0f} GB; load average {load:.2f} at the start, {load_end:.2f} at the end "
        f"(1 min); Python {env['python']}, {versions}. Repeats: {result['repeat']} (round-robin)."
    )


def section(result: dict) -> list[str]:
    out = [f"## {result['title']}", "", f"`{result['command']}`", ""]
    if result.get("quick"):
        out += ["**Quick mode** (tiny sizes, one repeat): these figures only show that the script runs.", ""]
    out += [result["description"], "", environment_line(result), ""]
    out += ["| measurement | median | min - max | samples | what it includes |", "|---|---:|---:|---:|---|"]
    for m in result["measurements"].values():
        spread = f"{fmt(m['min'], m['unit'])} - {fmt(m['max'], m['unit'])}" if len(m["samples"]) > 1 else ""
        out.append(
            f"| {cell(m['label'])} | {fmt(m['median'], m['unit'])} | {spread} | {len(m['samples'])} | "
            f"{cell(m['includes'])} |"
        )
    if result.get("derived"):
        out += ["", "| figure | value | how |", "|---|---:|---|"]
        for d in result["derived"].values():
            out.append(f"| {cell(d['label'])} | {fmt(d['value'], d['unit'])} | {cell(d['how'])} |")
    if result.get("importtime_top"):
        out += [
            "",
            "Slowest imports of a one-row run (`python -X importtime m.py +order_id=0`, top-level "
            "modules, cumulative):",
            "",
            "| module | cumulative | self |",
            "|---|---:|---:|",
        ]
        for e in result["importtime_top"]:
            out.append(f"| `{e['module']}` | {e['cumulative_us'] / 1000:.1f} ms | {e['self_us'] / 1000:.1f} ms |")
    if result.get("profile"):
        prof = result["profile"]
        out += [
            "",
            f"Where a sem sweep's time goes, {prof['rows']} rows (`python -m cProfile m.py -m`, the sweep "
            f"process, {prof['total_s']:.2f} s under the profiler): the functions called at least once per job, "
            "by cumulative time (nested: a caller's time includes its callees').",
            "",
            "| function | file | calls | cumulative | per job | share of the sweep |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for f in prof["top"]:
            out.append(
                f"| `{cell(f['function'].split(' (')[0])}` | `{cell(f['path'])}` | {f['calls']:,} | "
                f"{f['cumulative_s']:.3f} s | {f['cumulative_s'] / prof['rows'] * 1000:.1f} ms | "
                f"{f['cumulative_s'] / prof['total_s'] * 100:.0f}% |"
            )
    for note in result.get("notes", []):
        out += ["", note]
    out.append("")
    return out


def targets(results: dict[str, dict]) -> list[str]:
    out = [
        "## Targets",
        "",
        "The goals of the performance work against the latest results (sections below).",
        "",
        "| goal | target | measured | as measured | met |",
        "|---|---:|---:|---|---|",
    ]
    for bench, key, goal, at, op, limit, limit_unit in TARGETS:
        target = f"{op} {fmt(limit, limit_unit)}"
        result = results.get(bench)
        value, unit = value_of(result, key) if result else (None, "")
        if result is None or value is None:
            out.append(f"| {goal} | {target} | not measured | | |")
            continue
        item = result["derived"].get(key) or result["measurements"].get(key)
        params = result.get("params", {})
        if result.get("quick"):
            verdict = "quick mode, not judged"
        elif any(params.get(k) != v for k, v in at.items()):
            verdict = "measured at another size, not judged"
        elif value < 0:  # a difference of two medians below zero: the run-to-run spread exceeds the effect
            verdict = "negative: the spread between runs exceeds the effect, not judged"
        else:
            verdict = "yes" if CHECKS[op](value, limit) else "**no**"
        out.append(f"| {goal} | {target} | {fmt(value, unit)} | {cell(item['label'])} | {verdict} |")
    return out + [""]


def render(results_dir: Path) -> str:
    results = {}
    for name in ORDER:
        path = results_dir / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    extra = sorted(p.stem for p in results_dir.glob("*.json") if p.stem not in ORDER)
    for name in extra:
        results[name] = json.loads((results_dir / f"{name}.json").read_text())
    lines = [
        "# Performance",
        "",
        "<!-- generated by benchmarks/render.py from benchmarks/results/*.json: edit those, not this page -->",
        "",
        "Every figure on this page is read from a results file in `benchmarks/results/`, written by the",
        "benchmark script named in its section; each file keeps every raw sample, the machine, the load",
        "average and the versions. Contenders run side by side in one run, round-robin; sem runs with",
        "its defaults, its modules compiled to bytecode first, as `pip install` leaves them (like the",
        "contenders' in site-packages). To measure everything again on the current checkout and",
        "regenerate this page:",
        "",
        "```bash",
        "python benchmarks/run_all.py            # full sizes; bench_slurm needs the test Slurm cluster (sinfo)",
        "python benchmarks/run_all.py --quick    # small sizes: checks that every script runs (what CI does)",
        "```",
        "",
        "One script alone: the command shown in its section, then `python benchmarks/render.py`.",
        "`--snapshot` measures the last commit while the working tree has edits in progress;",
        '`--extra core="--memory-rows 2000"` passes arguments to one script. Each section records the commit,',
        "the machine and its load average: compare figures within one section (measured together, round-robin),",
        "not across sections or runs. CPU times (user + system) are given beside wall times where a busy",
        "machine would distort the wall time.",
        "",
    ]
    lines += targets(results)
    for result in results.values():
        lines += section(result)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
