"""Run the real SCALE-Sim on a table of GEMM shapes and print its total cycles as JSON.

This is how the table pinned in ``tests/test_cycle_figures.py`` was produced.  SCALE-Sim is
not a dependency of nmmx; run this script with a separate environment that has it:

    python -m venv /work/venv-scalesim
    /work/venv-scalesim/bin/pip install scalesim==2.0.2
    /work/venv-scalesim/bin/python tools/scalesim_table.py > table.json

Each entry is ``[dataflow, rows, cols, M, K, N, total_cycles]`` for SCALE-Sim's GEMM mode
(topology rows ``name, M, N, K,``), with SRAMs large enough that no run stalls, so the
total is SCALE-Sim's compute-cycle count.  nmmx maps an engine GEMM onto this with K
counted in sparsity groups (one group per PE per cycle), see
``golden.Config.schedule.scalesim_cycles``.  The script only calls SCALE-Sim's public entry point;
it imports nothing from nmmx, so it runs in SCALE-Sim's own environment.
"""

import contextlib
import io
import itertools
import json
import sys
import tempfile
from pathlib import Path

ARRAYS = [(4, 4), (8, 8), (3, 5)]
DATAFLOWS = ["os", "ws"]
# M x K x N: multiples and non-multiples of the array, K below and above the rows, a
# single row or column, one fold and many.
SHAPES = [(7, 200, 5), (8, 64, 8), (1, 1, 1), (16, 32, 16), (9, 17, 3), (3, 5, 20),
          (12, 100, 1), (1, 300, 9), (33, 7, 13), (4, 8, 4)]

_CONFIG = """[general]
run_name = nmmx_table

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:  65536
FilterSramSzkB: 65536
OfmapSramSzkB:  65536
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : {df}
Bandwidth : 1000
MemoryBanks: 1

[run_presets]
InterfaceBandwidth: CALC
"""


def scalesim_total_cycles(df, rows, cols, m, k, n, workdir):
    """SCALE-Sim's total cycles of one GEMM (its compute report)."""
    from scalesim.scale_sim import scalesim
    work = Path(workdir)
    cfg = work / f"{df}_{rows}x{cols}.cfg"
    cfg.write_text(_CONFIG.format(rows=rows, cols=cols, df=df))
    topo = work / f"gemm_{m}_{k}_{n}.csv"
    topo.write_text(f"Layer, M, N, K,\ngemm, {m}, {n}, {k},\n")
    out = work / "out"
    out.mkdir(exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=str(cfg),
                     topology=str(topo), input_type_gemm=True)
        s.run_scale(top_path=str(out))
    # scalesim 2.0.2's get_total_cycles() raises (it indexes a method), so read the
    # "Total Cycles" column of the COMPUTE_REPORT.csv it writes.
    report = (out / "nmmx_table" / "COMPUTE_REPORT.csv").read_text().splitlines()
    header = [h.strip() for h in report[0].split(",")]
    row = [v.strip() for v in report[1].split(",")]
    cycles = row[header.index("Total Cycles")]
    stalls = row[header.index("Stall Cycles")]
    assert int(float(stalls)) == 0, f"SCALE-Sim stalled {stalls} cycles; enlarge the SRAMs"
    return int(float(cycles))


def main():
    table = []
    with tempfile.TemporaryDirectory(prefix="nmmx_scalesim_") as tmp:
        for df, (rows, cols), (m, k, n) in itertools.product(DATAFLOWS, ARRAYS, SHAPES):
            table.append([df, rows, cols, m, k, n,
                          scalesim_total_cycles(df, rows, cols, m, k, n, tmp)])
    json.dump(table, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
