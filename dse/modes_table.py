"""``python -m dse.modes_table``: the README's table of a unified engine's modes beside
the fixed engines (issue 16), from committed measurements only:

- ``--sweep DIR``: a ``python -m dse --modes`` output (``modes.csv``, ``results.csv``):
  MACs per cycle and utilization on ``--gemm`` (one of the sweep's GEMMs), logic area;
- ``--synth FILE``: ``python -m synth --modes ... --liberty L --energy --json FILE``:
  Fmax (the unified PE is one netlist; each fixed PE its own) and pJ per
  dense-equivalent MAC (logic + buffers; the fixed engine's at its own Fmax);
- ``--scenario FILE``: ``python -m dse.scenario ... --json FILE``: the model study's
  embedding cosine of each mode on its default workload.

Writes ``-o FILE.md`` atomically; ``tests/test_modes.py`` checks that the README shows it.
"""

import csv
import json
import sys
from pathlib import Path

from nmmx.flags import ArgumentParser, UsageError, cli_main, parse_shape, shape_label
from nmmx.files import atomic_write, check_output_file

__all__ = ["build_parser", "main", "modes_table"]


def _read(path, what):
    try:
        text = Path(path).read_text()
    except OSError:
        raise UsageError(f"The {what} {str(path)!r} cannot be read") from None
    return text


def modes_table(modes_rows, fixed_rows, synth, scenario, gemm):
    """The Markdown table (header, separator, one row per unified mode and per fixed
    engine)."""
    lab = shape_label(gemm)
    fixed_by_name = {r["name"]: r for r in fixed_rows}
    cos = (scenario or {}).get("emb_cos_mean") or {}
    timing = (synth or {}).get("timing")
    energy = (synth or {}).get("energy")
    head = ["engine", "mode", f"MACs/cycle ({lab})", "utilization", "emb. cosine",
            "logic kGE"]
    if timing:
        head.append(f"Fmax MHz ({timing['unified']['library'].split('_')[0]})")
    if energy:
        head.append("pJ/MAC")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(engine, mode, macs, util, logic, fmax, pj):
        row = [engine, f"`{mode}`", f"{macs:.1f}", f"{util:.4f}",
               "-" if mode not in cos else f"{cos[mode]:.4f}", f"{logic / 1000:.1f}"]
        if timing:
            row.append("-" if fmax is None else f"{fmax:.1f}")
        if energy:
            row.append("-" if pj is None else f"{pj:.2f}")
        return "| " + " | ".join(row) + " |"

    for r in modes_rows:
        t = timing and timing["unified"]["fmax_mhz"]
        e = energy and energy["modes"][r["mode"]]["energy_pj_per_mac"]
        out.append(cells("unified", r["mode"], float(r[f"macs_per_cycle@{lab}"]),
                         float(r[f"utilization@{lab}"]), float(r["logic_ge"]), t, e))
    for r in modes_rows:
        f = fixed_by_name[r["fixed"]]
        t = timing and timing["modes"][r["mode"]]["fixed"]["fmax_mhz"]
        e = energy and energy["modes"][r["mode"]]["fixed_own_clock"]["energy_pj_per_mac"]
        out.append(cells("fixed", r["mode"], float(f[f"macs_per_cycle@{lab}"]),
                         float(f[f"utilization@{lab}"]), float(f["logic_ge"]), t, e))
    return "\n".join(out) + "\n"


def build_parser():
    p = ArgumentParser(prog="python -m dse.modes_table",
                       description="The README's table of a unified engine's modes beside "
                                   "the fixed engines, from committed measurements.",
                       examples=["python -m dse.modes_table --sweep docs/modes/sweep "
                                 "--synth docs/modes/osu018.json --scenario "
                                 "docs/modes/scenario.json -o docs/modes/table.md"])
    p.add_argument("--sweep", metavar="DIR", required=True,
                   help="output directory of python -m dse --modes")
    p.add_argument("--synth", metavar="FILE", default=None,
                   help="JSON of python -m synth --modes ... --liberty L --energy")
    p.add_argument("--scenario", metavar="FILE", default=None,
                   help="JSON of python -m dse.scenario")
    p.add_argument("--gemm", metavar="MxKxN", default="64x512x64",
                   help="GEMM of the MACs/cycle and utilization columns, one of the "
                        "sweep's [default: 64x512x64]")
    p.add_argument("-o", "--out", metavar="FILE.md", required=True)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        gemm = parse_shape(args.gemm)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = check_output_file(args.out, what="-o file")
    sweep = Path(args.sweep)
    modes_rows = list(csv.DictReader(_read(sweep / "modes.csv", "modes file").splitlines()))
    fixed_rows = list(csv.DictReader(_read(sweep / "results.csv", "results file")
                                     .splitlines()))
    if modes_rows and f"macs_per_cycle@{shape_label(gemm)}" not in modes_rows[0]:
        raise UsageError(f"--gemm {args.gemm} is not one of the sweep's GEMMs")
    synth = json.loads(_read(args.synth, "--synth file")) if args.synth else None
    scen = json.loads(_read(args.scenario, "--scenario file")) if args.scenario else None
    text = modes_table(modes_rows, fixed_rows, synth, scen, gemm)
    atomic_write(out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
