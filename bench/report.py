#!/usr/bin/env python3
"""Turn the raw output of bench/run into ratio tables (stdout and bench/RESULTS.md).

Input: a results directory holding one file per run, named
``<bench>-n<ranks>.<config>.<rep>.txt``, each a ``# <bench> <unit>`` header
followed by ``<size_bytes> <value>`` lines, plus ``commands.txt``
(``config<TAB>bench-nRANKS<TAB>command`` lines). Runs that failed are stored as
``*.failed`` and ignored. For every (benchmark, ranks, config, size) the median
over the repetitions is taken, shown with the spread (lowest–highest) of the
repetitions; ratios are of the medians, config / ``--baseline`` (MPICH), and
the targets are checked on those ratios for every ``--primary`` (mpicr's C ABI
and its Rust API), each with its own target column and summary. Every
repetition's value is kept too: in the results file's "All repetitions" part,
with the placement probe bench/run takes before each benchmark of each
repetition (``probe.<bench>-n<ranks>.<rep>.txt``, one number: ns one-way
between the first two CPUs).

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "<!-- bench/run replaces everything below this line -->"

DEFAULT_HEADER = """\
# Benchmark results: mpicr against MPICH

Produced by `bench/run` (see `bench/README.md` for what is measured and how).
To reproduce on a Debian machine, from the workspace root:

    bench/run

It installs Debian's `mpich` and `libmpich-dev` if they are missing, builds the
benchmarks for both MPI implementations (the C programs with `mpicc.mpich` and
with mpicr's `mpicc`, three of them also on mpicr's Rust API), runs them side by
side (3 repetitions, medians) and rewrites the section below. Ratios are
mpicr / MPICH: for latency and the collectives lower is better, for bandwidth
and bidirectional bandwidth higher is better.
"""


@dataclass(frozen=True)
class Bench:
    """What a benchmark measures and the target the issue sets for it."""

    title: str
    unit: str
    higher_is_better: bool
    target: float
    target_text: str

    min_size: int = 0  # sizes in scope for the target: min_size <= size <= max_size
    max_size: int | None = None
    size_note: str = ""  # what the size column means, when not the message size

    def in_scope(self, size: int) -> bool:
        return size >= self.min_size and (self.max_size is None or size <= self.max_size)

    def meets(self, ratio: float) -> bool:
        return ratio >= self.target if self.higher_is_better else ratio <= self.target


# Targets of issue 3 (C ABI) and issue 2 (Rust API), the same numbers.
BENCHES = {
    "latency": Bench(
        "latency", "µs one-way", False, 1.5, "≤ 1.5× MPICH for messages ≤ 1 KiB", max_size=1024
    ),
    "bandwidth": Bench(
        "bandwidth",
        "MB/s",
        True,
        0.8,
        "≥ 0.8× MPICH for messages ≥ 64 KiB",
        min_size=64 * 1024,
    ),
    "bibw": Bench(
        "bibw",
        "MB/s, both directions together",
        True,
        0.8,
        "≥ 0.8× MPICH for messages ≥ 64 KiB",
        min_size=64 * 1024,
    ),
    "allreduce": Bench("allreduce", "µs per call (slowest rank)", False, 1.5, "≤ 1.5× MPICH"),
    "bcast": Bench("bcast", "µs per call (slowest rank)", False, 1.5, "≤ 1.5× MPICH"),
    "alltoall": Bench(
        "alltoall",
        "µs per call (slowest rank)",
        False,
        1.5,
        "≤ 1.5× MPICH",
        size_note="size = block per peer",
    ),
}
BENCH_ORDER = ["latency", "bandwidth", "bibw", "allreduce", "bcast", "alltoall"]


@dataclass
class Series:
    """All repetitions of one configuration of one benchmark."""

    reps: dict[int, dict[int, float]] = field(default_factory=dict)  # rep -> size -> value
    failed: int = 0

    def values(self, size: int) -> list[float]:
        """The value of every repetition that measured `size`, in repetition order."""
        return [self.reps[rep][size] for rep in sorted(self.reps) if size in self.reps[rep]]

    def listing(self, size: int, reps: int) -> str:
        """Every repetition's value at `size`, in order; "—" for one that failed."""
        return " ".join(
            value_text(self.reps[rep][size])
            if rep in self.reps and size in self.reps[rep]
            else "—"
            for rep in range(1, reps + 1)
        )

    def median(self, size: int) -> tuple[float | None, int]:
        values = self.values(size)
        if not values:
            return None, 0
        return statistics.median(values), len(values)


def parse_run(path: Path, bench: str) -> dict[int, float]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith(f"# {bench} "):
        raise ValueError(f"{path}: missing '# {bench} ...' header")
    out: dict[int, float] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            try:
                out[int(parts[0])] = float(parts[1])
            except ValueError:
                pass
    return out


def load(results: Path) -> dict[tuple[str, int], dict[str, Series]]:
    """(bench, ranks) -> config -> Series."""
    pattern = re.compile(r"^([a-z]+)-n(\d+)\.([A-Za-z0-9_-]+)\.(\d+)\.(txt|failed)$")
    data: dict[tuple[str, int], dict[str, Series]] = {}
    for path in sorted(results.iterdir()):
        m = pattern.match(path.name)
        if not m:
            continue
        bench, ranks, config, rep, kind = m[1], int(m[2]), m[3], int(m[4]), m[5]
        series = data.setdefault((bench, ranks), {}).setdefault(config, Series())
        if kind == "failed":
            series.failed += 1
            continue
        try:
            series.reps[rep] = parse_run(path, bench)
        except ValueError as err:
            print(f"report.py: {err}", file=sys.stderr)
            series.failed += 1
    return data


def load_probes(results: Path) -> dict[tuple[str, int], dict[int, str]]:
    """(bench, ranks) -> rep -> the placement probe taken just before that repetition."""
    pattern = re.compile(r"^probe\.([a-z]+)-n(\d+)\.(\d+)\.txt$")
    probes: dict[tuple[str, int], dict[int, str]] = {}
    for path in sorted(results.iterdir()):
        m = pattern.match(path.name)
        if m:
            value = path.read_text().strip()
            if value.isdigit():
                probes.setdefault((m[1], int(m[2])), {})[int(m[3])] = value
    return probes


def size_text(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def value_text(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    if value < 10000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def spread_text(values: list[float]) -> str:
    """The lowest and highest of several repetitions; empty for fewer than two."""
    if len(values) < 2:
        return ""
    return f"{value_text(min(values))}–{value_text(max(values))}"


@dataclass
class Verdict:
    """Target checks of one primary configuration in one table."""

    label: str
    checked: int = 0
    met: int = 0
    misses: list[str] = field(default_factory=list)
    present: bool = True

    def text(self) -> str:
        if not self.present:
            return f"{self.label}: not run"
        if self.checked == 0:
            return f"{self.label}: not checked (no comparable sizes)"
        if not self.misses:
            return f"{self.label}: met at all {self.checked} sizes in scope"
        return (
            f"{self.label}: met at {self.met} of {self.checked} sizes;"
            f" missed at {', '.join(self.misses)}"
        )


@dataclass
class Table:
    title: str
    note: str
    header: list[str]
    rows: list[list[str]]
    summary: str
    verdicts: list[Verdict] = field(default_factory=list)
    oversubscribed: bool = False
    # A header row, then per size each configuration's values in repetition order.
    all_reps: list[list[str]] = field(default_factory=list)


def build_table(
    bench_name: str,
    ranks: int,
    by_config: dict[str, Series],
    configs: list[tuple[str, str]],
    baseline: str,
    primaries: list[str],
    reps: int,
    cores: int,
    probes: dict[int, str],
) -> Table:
    bench = BENCHES[bench_name]
    present = [(cid, label) for cid, label in configs if cid in by_config]
    labels = dict(configs)
    sizes = sorted({s for series in by_config.values() for r in series.reps.values() for s in r})

    header = ["size"]
    for cid, label in present:
        header.append(label)
        if reps > 1:
            header.append("spread")
        if cid != baseline:
            header.append("ratio")
            if cid in primaries:
                header.append("target")
    verdicts = {
        cid: Verdict(labels.get(cid, cid), present=cid in by_config) for cid in primaries
    }
    rows: list[list[str]] = []
    all_reps: list[list[str]] = [["size"] + [label for _, label in present]]
    partial = False
    for size in sizes:
        base_value = by_config[baseline].median(size)[0] if baseline in by_config else None
        row = [size_text(size)]
        all_reps.append(
            [size_text(size)] + [by_config[cid].listing(size, reps) for cid, _ in present]
        )
        for cid, _label in present:
            value, count = by_config[cid].median(size)
            mark = "" if count in (0, reps) else "*"
            partial |= bool(mark)
            row.append(value_text(value) + mark)
            if reps > 1:
                row.append(spread_text(by_config[cid].values(size)))
            if cid == baseline:
                continue
            ratio = value / base_value if value is not None and base_value else None
            row.append("—" if ratio is None else f"{ratio:.2f}")
            if cid in primaries:
                verdict = verdicts[cid]
                if not bench.in_scope(size):
                    row.append("")
                elif ratio is None:
                    row.append("n/a")
                else:
                    verdict.checked += 1
                    if bench.meets(ratio):
                        verdict.met += 1
                        row.append("ok")
                    else:
                        verdict.misses.append(size_text(size))
                        row.append("MISS")
        rows.append(row)

    direction = "higher" if bench.higher_is_better else "lower"
    note = f"{bench.unit}, {direction} is better"
    if bench.size_note:
        note += f"; {bench.size_note}"
    if baseline in labels and len(present) > 1:
        note += f"; ratio = column / {labels[baseline]}"
    checked_labels = [labels[cid] for cid in primaries if cid in by_config]
    if reps > 1:
        note += f"; value = median of {reps} repetitions, spread = lowest–highest of them"
        if len(present) > 1:
            note += ", ratio = of the medians"
    if checked_labels:
        note += f"; target for {' and '.join(checked_labels)}: {bench.target_text}"
        if reps > 1:
            note += ", checked on the ratio of the medians"
    oversubscribed = ranks > cores
    if oversubscribed:
        note += (
            f". {ranks} ranks on {cores} cores oversubscribe this machine: MPICH busy-polls, so"
            " its times include scheduler time slices; compare with the one-rank-per-core table"
        )
    if probes:
        note += (
            ". Placement probe before each repetition (ns one-way between the first two CPUs): "
            + " ".join(probes.get(rep, "—") for rep in range(1, reps + 1))
        )
    if partial:
        note += f". * = median of fewer than {reps} repetitions (some runs failed)"
    failed = {label: by_config[cid].failed for cid, label in present if by_config[cid].failed}
    if failed:
        note += ". Failed runs: " + ", ".join(f"{k} {v}" for k, v in failed.items())

    shown = [v for cid, v in verdicts.items() if cid in by_config]
    if baseline not in by_config or not shown:
        summary = f"targets: not checked (needs results of {baseline} and of " + " or ".join(
            primaries
        ) + ")"
        shown = []
    else:
        summary = "targets: " + "; ".join(v.text() for v in shown)
    if oversubscribed:
        summary += " (oversubscribed: not a fair comparison)"
    return Table(
        f"{bench_name}, {ranks} ranks",
        note,
        header,
        rows,
        summary,
        shown,
        oversubscribed,
        all_reps=all_reps,
    )


def overall(tables: list[Table], primaries: list[str], labels: dict[str, str]) -> list[str]:
    """One line per primary: its target checks over all tables, leaving out an
    oversubscribed table when the same benchmark also has a one-rank-per-core
    table."""
    fair_benches = {t.title.split(",")[0] for t in tables if not t.oversubscribed}
    lines = []
    for cid in primaries:
        label = labels.get(cid, cid)
        checked = met = 0
        missed: list[str] = []
        skipped: list[str] = []
        for t in tables:
            bench = t.title.split(",")[0]
            mine = [v for v in t.verdicts if v.label == label]
            if mine and t.oversubscribed and bench in fair_benches:
                skipped.append(t.title)
                continue
            for v in mine:
                checked += v.checked
                met += v.met
                if v.misses:
                    missed.append(f"{t.title} ({len(v.misses)} of {v.checked})")
        if checked == 0:
            continue
        line = f"{label}: targets met at {met} of {checked} sizes in scope"
        line += f"; missed in {'; '.join(missed)}" if missed else ", in every table"
        if skipped:
            line += f" (not counted, oversubscribed: {'; '.join(skipped)})"
        lines.append(line)
    return lines


def render_text(table: Table) -> str:
    widths = [max(len(r[i]) for r in [table.header, *table.rows]) for i in range(len(table.header))]
    lines = [f"{table.title} — {table.note}"]
    for row in [table.header, *table.rows]:
        cells = [row[0].rjust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.append(f"  {table.summary}")
    return "\n".join(lines)


def render_markdown(table: Table) -> str:
    lines = [f"### {table.title}", "", table.note + ".", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join("---:" for _ in table.header) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"**{table.summary}**", ""]
    return "\n".join(lines)


def render_repetitions(table: Table) -> str:
    """Every repetition's value of `table`, in repetition order, one row per size."""
    header, *rows = table.all_reps
    lines = [f"#### {table.title}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    return "\n".join(lines)


def command_output(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def environment(root: Path) -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mpich = "unknown"
    info = command_output("mpichversion")
    version = re.search(r"MPICH Version:\s*(\S+)", info)
    device = re.search(r"MPICH Device:\s*(\S+)", info)
    if version:
        mpich = version[1] + (f" (device {device[1]})" if device else "")
    pkg = command_output("dpkg-query", "-W", "-f=${Version}", "mpich").strip()
    if pkg:
        mpich += f", Debian package mpich {pkg}"
    commit = command_output("git", "-C", str(root), "rev-parse", "--short", "HEAD").strip()
    if commit and command_output("git", "-C", str(root), "status", "--porcelain", "--", "crates"):
        commit += " + uncommitted changes in crates/"
    return [
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("kernel (uname -r)", platform.release()),
        ("CPU", f"{cpu}, {os.cpu_count()} cores ({usable} usable)"),
        ("MPICH", mpich),
        ("mpicr", commit or "unknown"),
        ("rustc", command_output("rustc", "--version").strip() or "unknown"),
    ]


def write_results(
    path: Path,
    args: argparse.Namespace,
    tables: list[Table],
    totals: list[str],
    commands: list[str],
) -> None:
    head = DEFAULT_HEADER
    if path.exists():
        old = path.read_text()
        if MARKER in old:
            head = old.split(MARKER, 1)[0].rstrip() + "\n"
    env = environment(Path(__file__).resolve().parent.parent)
    body = ["## Latest run", ""]
    body.append(f"- command: `{args.command}`")
    body += [f"- {key}: {value}" for key, value in env]
    body.append(
        f"- repetitions: {args.reps}, each running every implementation back to back in an"
        " order that rotates from one repetition to the next; value shown = median, with the"
        " spread (lowest–highest) of the repetitions; **each target is decided on the ratio of"
        " the medians**; every repetition's value is listed at the end"
    )
    body += ["", "Summary:", ""]
    body += [f"- **{line}**" for line in totals]
    body += [f"- {t.title}: {t.summary}" for t in tables]
    body += ["", "Programs as started (repetition 1):", ""]
    body += [f"    {c}" for c in commands]
    body.append("")
    body += [render_markdown(t) for t in tables]
    if args.reps > 1:
        body += [
            "## All repetitions",
            "",
            "Each cell: the values in repetition order (— for a run that failed).",
            "",
        ]
        body += [render_repetitions(t) for t in tables]
    path.write_text(head + "\n" + MARKER + "\n\n" + "\n".join(body).rstrip() + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="directory of raw run outputs")
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="ID=LABEL",
        help="a configuration, in column order",
    )
    parser.add_argument("--baseline", default="mpich", help="config id the ratios divide by")
    parser.add_argument(
        "--primary",
        action="append",
        metavar="ID",
        help="config id the targets are checked for (repeatable; default mpicr)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions that were run")
    parser.add_argument("--command", default="bench/run", help="the command line, for the record")
    parser.add_argument("--write", type=Path, help="results file to (re)write, e.g. bench/RESULTS.md")
    args = parser.parse_args()

    configs: list[tuple[str, str]] = []
    for spec in args.config:
        cid, _, label = spec.partition("=")
        configs.append((cid, label or cid))
    data = load(args.results)
    if not data:
        print(f"report.py: no results in {args.results}", file=sys.stderr)
        return 1
    primaries = args.primary or ["mpicr"]
    probes = load_probes(args.results)
    cores = os.cpu_count() or 1
    keys = sorted(data, key=lambda k: (BENCH_ORDER.index(k[0]) if k[0] in BENCH_ORDER else 99, -k[1]))
    tables = [
        build_table(
            b,
            n,
            data[(b, n)],
            configs,
            args.baseline,
            primaries,
            args.reps,
            cores,
            probes.get((b, n), {}),
        )
        for b, n in keys
        if b in BENCHES
    ]

    totals = overall(tables, primaries, dict(configs))

    print()
    for table in tables:
        print(render_text(table))
        print()
    for line in totals:
        print(line)
    if totals:
        print()
    commands = []
    commands_file = args.results / "commands.txt"
    if commands_file.exists():
        for line in commands_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                commands.append(f"{parts[0]:<10} {parts[2]}")
    if args.write:
        write_results(args.write, args, tables, totals, commands)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
