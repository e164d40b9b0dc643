"""Gate-level energy (synth.energy, synth.cellsim): cell models, toggle counting, the
OpenSTA cross-check, and the energy orderings issue #14 asks for."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golden.config import Config
from sim.stimulus import make_operands
from synth import cellsim, energy, nldm
from synth.liberty_text import eval_function

ROOT = Path(__file__).resolve().parent.parent

try:
    OSU = nldm.find_library("osu018")
except nldm.LibraryError:       # pragma: no cover - the machine setup provides it
    OSU = None
needs_osu = pytest.mark.skipif(OSU is None, reason="OSU018 liberty not installed")

def _cfg(fmt, sp=(2, 4), **kw):
    """A small config: the PE does not depend on the array size, only the GEMM does."""
    kw.setdefault("rows", 2)
    kw.setdefault("cols", 2)
    return Config(a_format=fmt, w_format=fmt, sparsity=sp, m_max=4, k_max=256, n_max=4, **kw)


# -- cell models against the liberty ----------------------------------------------------------

def _exhaustive_tb(cells):
    """A testbench that applies every input vector of each cell, one per cycle, and
    prints ``v <cycle> <cell> <pin> <value>`` (the test's own check, not the counters)."""
    body, disp, n_max = [], [], 0
    for i, c in enumerate(cells):
        ins = [p.name for p in c.inputs]
        n_max = max(n_max, len(ins))
        conns = [f".{x}(x[{b}])" for b, x in enumerate(ins)]
        for p in c.outputs:
            body.append(f"  wire y{i}_{p.name};")
            conns.append(f".{p.name}(y{i}_{p.name})")
            disp.append(f'    $display("v %0d {c.name} {p.name} %0d", cyc, y{i}_{p.name});')
        body.append(f"  {c.name} c{i} ({', '.join(conns)});")
    return ("module tb(input clk);\n  integer cyc = 0;\n"
            f"  wire [{n_max - 1}:0] x = cyc[{n_max - 1}:0];\n" + "\n".join(body) +
            "\n  always @(posedge clk) begin\n" + "\n".join(disp) +
            f"\n    cyc <= cyc + 1;\n    if (cyc == {1 << n_max}) $finish;\n  end\nendmodule\n")


@needs_osu
def test_combinational_models_equal_the_liberty_functions():
    cells = [OSU.cells[n] for n in ("NAND2X1", "AOI21X1", "XOR2X1", "MUX2X1", "FAX1", "OAI22X1")]
    src = {"cells.v": cellsim.cell_models(OSU, [c.name for c in cells]),
           "tb.v": _exhaustive_tb(cells)}
    out = cellsim.run(cellsim.build(src, count=False), [0], 1)
    got = {(int(k), c, p): int(v) for k, c, p, v in
           re.findall(r"^v (\d+) (\w+) (\w+) (\d+)$", out, re.M)}
    checked = 0
    for c in cells:
        ins = [p.name for p in c.inputs]
        for k in range(1 << len(ins)):
            env = {x: bool(k >> b & 1) for b, x in enumerate(ins)}
            for p in c.outputs:
                assert got[(k, c.name, p.name)] == int(eval_function(p.function, env)), \
                    (c.name, p.name, k)
                checked += 1
    assert checked == sum((1 << len(c.inputs)) * len(c.outputs) for c in cells)


@needs_osu
def test_flip_flop_model_follows_its_ff_group():
    cell = OSU.cells["DFFPOSX1"]
    assert cell.state == {"kind": "ff", "vars": cell.state["vars"], "next_state": "D",
                          "clocked_on": "CLK"}
    rng = np.random.default_rng(5)
    d = rng.integers(0, 2, 64)
    tb = ("module tb(input clk);\n  integer cyc = 0;\n  reg d = 0;\n  wire q;\n"
          "  DFFPOSX1 ff (.CLK(clk), .D(d), .Q(q));\n"
          "  always @(posedge clk) begin\n    $display(\"v %0d %0d\", cyc, q);\n"
          f"    d <= (64'h{int(''.join(map(str, d[::-1])), 2):016x} >> cyc[5:0]) & 1;\n"
          "    cyc <= cyc + 1;\n    if (cyc == 64) $finish;\n  end\nendmodule\n")
    src = {"cells.v": cellsim.cell_models(OSU, ["DFFPOSX1"]), "tb.v": tb}
    out = cellsim.run(cellsim.build(src, count=False), [0], 1)
    q = {int(k): int(v) for k, v in re.findall(r"^v (\d+) (\d+)$", out, re.M)}
    # d takes bit c at edge c; the flop samples it at edge c+1, q shows it at edge c+2.
    assert [q[c + 2] for c in range(60)] == list(d[:60])


def test_truth_table_order():
    assert cellsim.truth_table("(A B)", ["A", "B"]) == 0b1000
    assert cellsim.truth_table("(!A)", ["A"]) == 0b01
    assert cellsim.truth_table("A+B'", ["A", "B"]) == 0b1011


# -- toggle counting -------------------------------------------------------------------------------

@needs_osu
def test_toggle_counts_of_a_known_circuit():
    # x -> INV -> INV -> DFF; and NAND2(x, q).  Net bits are Yosys-style integers.
    module = {"ports": {"x": {"direction": "input", "bits": [2]},
                        "clk": {"direction": "input", "bits": [3]},
                        "rst": {"direction": "input", "bits": [9]},
                        "y": {"direction": "output", "bits": [7]}},
              "cells": {"i1": {"type": "INVX1", "connections": {"A": [2], "Y": [4]}},
                        "i2": {"type": "INVX1", "connections": {"A": [4], "Y": [5]}},
                        "ff": {"type": "DFFPOSX1",
                               "connections": {"CLK": [3], "D": [5], "Q": [6]}},
                        "nd": {"type": "NAND2X1", "connections": {"A": [2], "B": [6],
                                                                  "Y": [7]}}}}
    names = ["ff", "i1", "i2", "nd"]
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, 500)
    src = {"cells.v": cellsim.cell_models(OSU, {"INVX1", "DFFPOSX1", "NAND2X1"}),
           "dut.v": cellsim.netlist_verilog(module, names),
           "tb.v": cellsim.testbench([("x", 0, 1)], 1)}
    counts = cellsim.parse_counts(cellsim.run(cellsim.build(src),
                                              [int(v) for v in x], 1))
    # The counters sample at every rising edge 0..N, before it: the word is x[e-1]
    # (0 at edge 0), the flop holds x[e-2] (0 before edge 2).
    w = np.concatenate([[0], x])
    q = np.concatenate([[0, 0], x[:-1]])
    nand = 1 - (w & q)
    toggles = lambda v: int(np.count_nonzero(np.diff(v)))   # noqa: E731
    assert counts == {(1, "Y"): toggles(w), (2, "Y"): toggles(w), (0, "Q"): toggles(q),
                      (3, "Y"): toggles(nand)}
    assert toggles(w) > 100
    # The input's own toggles as the energy flow counts them from the stimulus.
    assert energy.input_toggles([("x", 0, 1)], {"x": x.astype(object)}) == \
        {("x", 0): toggles(w)}


# -- the OpenSTA cross-check --------------------------------------------------------------------

@needs_osu
def test_switching_power_agrees_with_opensta_report_power():
    config = _cfg("int8", (4, 4))
    lib = OSU
    netdir = energy.mapped_pe(config, lib, 4000.0)
    net = energy.Netlist(netdir, lib)
    sta = energy.sta_power(net, 0.1, 4000.0)
    ours = energy.switching_power_uniform(net, 0.1, 4000.0)
    print(f"switching at activity 0.1: nmmx {ours:.4f} mW, OpenSTA {sta['switching']:.4f} mW")
    assert sta["switching"] > 0
    assert ours == pytest.approx(sta["switching"], rel=0.10)
    # Twice the activity, twice the power, in both.
    assert energy.switching_power_uniform(net, 0.2, 4000.0) == pytest.approx(2 * ours)


# -- energy orderings ---------------------------------------------------------------------------------

def _pj_per_mac(config, data, cycles=2000):
    r = energy.pe_energy(config, OSU, 4000.0, data=data, cycles=cycles,
                         gemm=(config.m_max, config.k_max, config.n_max))
    return sum(r["logic_fj"].values()) / r["macs"] / 1000.0, r


@needs_osu
def test_energy_falls_with_zero_heavy_data():
    config = _cfg("mxfp4_e2m1")
    gauss, r = _pj_per_mac(config, "gaussian")
    half, _ = _pj_per_mac(config, "halfzero")
    print(f"{config.name}: gaussian {gauss:.3f} pJ/MAC, halfzero {half:.3f} pJ/MAC")
    assert r["macs"] == r["valid_cycles"] * config.m_group
    assert half < gauss


@needs_osu
def test_mxfp4_pe_spends_less_per_mac_than_mxfp8():
    fp4, _ = _pj_per_mac(_cfg("mxfp4_e2m1"), "gaussian")
    fp8, _ = _pj_per_mac(_cfg("mxfp8_e4m3"), "gaussian")
    print(f"mxfp4_e2m1 {fp4:.3f} pJ/MAC, mxfp8_e4m3 {fp8:.3f} pJ/MAC")
    assert fp4 < fp8


# -- the stimulus -----------------------------------------------------------------------------

def test_halfzero_zeroes_half_the_activations():
    from sim.stimulus import DATA_CLASSES, ENERGY_CLASSES, _SEED_INDEX
    config = _cfg("mxfp8_e4m3")
    enc = make_operands(config, 4, 256, 4, "halfzero", seed=3)
    zeros = int((enc.a_codes == 0).sum())
    # Exactly half are set to zero; a gaussian code rounds to zero only rarely.
    assert enc.a_codes.size // 2 <= zeros < 0.55 * enc.a_codes.size
    assert (make_operands(config, 4, 256, 4, "gaussian", seed=3).a_codes == 0).mean() < 0.05
    # The regression classes keep the seed streams they had before halfzero existed.
    old = sorted(set(DATA_CLASSES) - set(ENERGY_CLASSES))
    assert {c: _SEED_INDEX[c] for c in old} == {c: i for i, c in enumerate(old)}


def test_pe_stream_follows_the_schedule():
    config = _cfg("mxfp8_e4m3")
    m, k, n = 4, 256, 4
    stream, valid = energy.pe_stream(config, m, k, n, cycles=10_000)
    g = config.groups(k)
    tiles = config.schedule.output_tiles(m, n)
    assert valid == tiles * g
    assert len(stream["a"]) == tiles * config.schedule.tile_period(k)
    from hw.pe import control_layout
    ctl = stream["ctl"].astype(np.int64)
    first = (ctl >> control_layout["tfirst"].offset) & 1
    assert first.sum() == tiles


def test_sim_cli_runs_halfzero():
    c = Config(rows=2, cols=3, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2", sparsity=(2, 4),
               m_max=5, n_max=7, k_max=96)
    res = subprocess.run([sys.executable, "-m", "sim", "--rows", "2", "--cols", "3",
                          "--format", c.a_format, "--sparsity", "2:4", "--m-max", "5",
                          "--k-max", "96", "--n-max", "7", "--gemm", "5x96x7",
                          "--data", "halfzero"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"PASS  {c.name}  gemm 5x96x7")


# -- the design-space study -----------------------------------------------------------------------

@needs_osu
def test_dse_energy_columns_front_and_plot(tmp_path):
    import csv
    from dse.__main__ import main as dse_main
    from tests.test_dse import fake_area
    from nmmx.flags import run_cli
    out = tmp_path / "dse"
    argv = ["--format", "mxfp4_e2m1", "--sparsity", "4:4,2:4", "--rows", "2,4", "--cols", "2",
            "--eval-shape", "8x64x8", "--gemm", "8x256x8", "--no-progress",
            "--energy", "--liberty", "osu018", "-o", str(out)]
    assert run_cli(lambda a: dse_main(a, area_fn=fake_area), argv) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 4
    for r in rows:
        parts = sum(float(v) for k, v in r.items()
                    if k.startswith("energy_") and k.endswith("_pj"))
        assert float(r["energy_pj_per_mac"]) == pytest.approx(parts, rel=1e-3)
        assert float(r["tops_per_w"]) == pytest.approx(2 / float(r["energy_pj_per_mac"]),
                                                       rel=1e-3)
        assert r["energy_library"] == "osu018_stdcells"
    # One PE measurement per (format, sparsity): both array sizes share it.
    by = {}
    for r in rows:
        by.setdefault(r["sparsity"], set()).add(r["logic_pj_per_mac"])
    assert all(len(v) == 1 for v in by.values())
    assert any(r["pareto_energy"] == "True" for r in rows)
    report = (out / "report.md").read_text()
    assert "## Energy (osu018_stdcells, gaussian data)" in report
    assert (out / "energy_breakdown.png").stat().st_size > 1000
    assert (out / "pareto_energy.png").is_file()


# -- python -m synth --energy --------------------------------------------------------------------

@needs_osu
def test_synth_energy_cli_writes_the_report(tmp_path, capsys):
    import json
    from synth.__main__ import main as synth_main
    from synth.energy_report import REPORT_KEYS
    out = tmp_path / "e.json"
    assert synth_main(["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--liberty", "osu018",
                       "--energy", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert set(REPORT_KEYS) <= set(r)
    assert r["energy_pj_per_mac"] == pytest.approx(sum(r["energy_breakdown"].values()),
                                                   rel=1e-3)
    assert r["energy_pj_per_mac"] == pytest.approx(r["logic_pj_per_mac"]
                                                   + r["buffer_pj_per_mac"], rel=1e-4)
    config = Config.from_dict(r["config"])
    m, k, n = r["gemm"]
    assert r["energy_pj_per_gemm"] == pytest.approx(
        r["energy_pj_per_mac"] * config.schedule.useful_macs(m, k, n), rel=1e-4)
    assert r["tops_per_w"] == pytest.approx(2 / r["energy_pj_per_mac"], rel=1e-3)
    assert {f"buffer_{b}" for b in config.host_buffers} <= set(r["energy_breakdown"])
    assert r["buffer_model"]["node_nm"] == 45 and "not scaled" in r["note"]
    assert r["cycles"] == 10_000 and f"{r['cycles']} cycles" in text
    assert "pJ/MAC" in text and "TOPS/W" in text
    # One Fmax: TOPS/W is priced at the clock the timing report gives for the same flags.
    tim = tmp_path / "t.json"
    assert synth_main(["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--liberty", "osu018",
                       "--json", str(tim)]) == 0
    t = json.loads(tim.read_text())
    worst = min(m["fmax_mhz"] for m in t["modules"].values() if m["fmax_mhz"])
    assert r["fmax_mhz"] == t["fmax_mhz"] == worst
    assert r["period_ps"] == t["critical_path_ps"]


# -- python -m synth.table --energy --------------------------------------------------------------

def _fake_report(config, library, clock_ps=None, *, data="gaussian", **kw):
    """An energy report whose figures name the case, so the table's mapping can be read."""
    logic = {"int8": 1.0, "mxfp8_e4m3": 2.0, "mxfp4_e2m1": 0.5}[config.a_format] \
        * config.n_keep / 4 * (0.5 if data == "halfzero" else 1.0)
    bd = {"multipliers": logic / 2, "clock": logic / 4, "block_accumulator": logic / 8,
          "output_accumulator": logic / 8, "buffer_a": 0.25}
    scope = "WSPE (0, 0) plus its column's block-end unit" \
        if config.dataflow.value == "ws" and config.scaled else "PE (0, 0)"
    return {"logic_pj_per_mac": logic, "buffer_pj_per_mac": 0.25,
            "energy_pj_per_mac": logic + 0.25, "logic_tops_per_w": 2 / logic,
            "tops_per_w": 2 / (logic + 0.25), "energy_breakdown": bd, "fmax_mhz": 100.0,
            "clock_ps": 1000.0, "period_ps": 10000.0, "gemm": [64, 1024, 64],
            "cycles": 10_000, "scope": scope,
            "buffer_model": {"name": "cacti7-45nm", "node_nm": 45}}


@needs_osu
def test_synth_table_energy_writes_one_row_per_case(tmp_path, monkeypatch, capsys):
    import json
    import synth.energy_report
    from synth import table
    monkeypatch.setattr(synth.energy_report, "energy_report", _fake_report)
    out, md = tmp_path / "t.json", tmp_path / "t.md"
    assert table.main(["--energy", "--liberty", "osu018", "--json", str(out),
                       "--markdown", str(md)]) == 0
    rows = json.loads(out.read_text())["rows"]
    keys = [(r["format"], r["sparsity"], r["dataflow"], r["data"]) for r in rows]
    want = [(f, s, d, "gaussian") for f in table.FORMATS for s in table.SPARSITIES
            for d in ("os", "ws")]
    want += [(f, s, d, x) for f, s, d, _ in want if (f, d) in table.EXTRA_CONFIGS
             for x in table.EXTRA_DATA]
    assert keys == want and len(set(keys)) == len(keys)
    for r in rows:
        want_logic = _fake_report(Config(rows=8, cols=8, a_format=r["format"],
                                         w_format=r["format"], sparsity=r["sparsity"],
                                         dataflow=r["dataflow"]), OSU,
                                  data=r["data"])["logic_pj_per_mac"]
        assert r["logic_pj_per_mac"] == want_logic
        assert r["clock_share"] == pytest.approx(0.25)
        assert r["buffer_share"] == pytest.approx(0.25 / (want_logic + 0.25), abs=1e-4)
    text = md.read_text()
    lines = [x for x in text.splitlines() if x.startswith("| osu018")]
    # The figures, then the logic by unit, one line per row in each.
    assert len(lines) == 2 * len(rows)
    assert "¹" not in text
    head = [x for x in text.splitlines() if x.startswith("| library")][1]
    assert head == ("| library | PE (8x8) | dataflow | data | multipliers | block accumulator "
                    "| binary32 accumulator (int32 for int8) | clock |")
    for r, x in zip(rows, lines[len(rows):]):
        bd = r["energy_breakdown"]
        assert x.endswith(" | ".join(f"{bd[k]:.4f}" for k in (
            "multipliers", "block_accumulator", "output_accumulator", "clock")) + " |")
    assert "45 nm" in text and capsys.readouterr().out.strip() == text.strip()


def test_readme_energy_table_is_the_committed_table():
    """The README shows the table the command wrote, and it covers the issue's set."""
    import json
    doc = json.loads((ROOT / "docs/energy/table.json").read_text())
    keys = {(r["format"], r["sparsity"], r["dataflow"], r["library"].split("_")[0][:6])
            for r in doc["rows"] if r["data"] == "gaussian"}
    assert keys == {(f, s, d, lib) for f in ("int8", "mxfp8_e4m3", "mxfp4_e2m1")
                    for s in ("2:4", "4:4") for d in ("os", "ws")
                    for lib in ("osu018", "asap7s")}
    assert "¹" not in (ROOT / "docs/energy/table.md").read_text()
    table_md = (ROOT / "docs/energy/table.md").read_text().split("\n\n")
    tables = [[x for x in part.splitlines() if x.startswith("|")] for part in table_md]
    tables = [t for t in tables if t]
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    # Two tables (the figures, the logic by unit), each a header, a separator and one
    # line per row, shown whole and in order in the README.
    assert len(tables) == 2
    for rows in tables:
        assert len(rows) == len(doc["rows"]) + 2
        assert all(x in lines for x in rows), [x for x in rows if x not in lines]
        at = lines.index(rows[0])
        assert lines[at:at + len(rows)] == rows


# -- the units of the breakdown -----------------------------------------------------------------

_UNITS = set(energy.ENERGY_CATEGORIES) - {"clock", "leakage", "other"}


@needs_osu
@pytest.mark.parametrize("fmt,sp,df", [("int8", (2, 4), "os"), ("int8", (4, 4), "ws"),
                                       ("mxfp8_e4m3", (2, 4), "os"),
                                       ("mxfp4_e2m1", (2, 4), "ws"),
                                       ("unified", (2, 4), "os")])
def test_every_pe_cell_lands_in_a_named_unit(fmt, sp, df):
    if fmt == "unified":      # the reconfigurable PE (hw.multi_pe.MultiPE)
        config = Config(modes="mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p", rows=2,
                        cols=2, m_max=4, k_max=256, n_max=4)
    else:
        config = _cfg(fmt, sp, dataflow=df)
    netdir = energy.mapped_pe(config, OSU, 4000.0)
    names, cats, _ = energy.cell_categories(netdir, OSU, config.scaled)
    total = {}
    for name, cat in zip(names, cats):
        assert set(cat) <= _UNITS, (name, cat)
        assert sum(cat.values()) == pytest.approx(1.0), (name, cat)
        for k, v in cat.items():
            total[k] = total.get(k, 0.0) + v
    print(config.name, {k: round(v) for k, v in sorted(total.items())})
    want = {"multipliers", "pipeline_registers"} | ({"sparse_select"} if sp == (2, 4) else set())
    if df == "os":
        # The products' sum and the accumulator that holds the tile's result.
        want |= {"block_accumulator", "output_accumulator"}
        if config.scaled:
            want.add("converter")
    else:
        # The weight-stationary partial sum: exact (MX) or the int32 sum (int8).
        want.add("block_accumulator" if config.scaled else "output_accumulator")
    assert set(total) == want


@needs_osu
def test_every_block_end_cell_lands_in_a_named_unit():
    config = _cfg("mxfp8_e4m3", dataflow="ws")
    netdir = energy.mapped_block_end(config, OSU, 4000.0)
    names, cats, _ = energy.cell_categories(netdir, OSU, config.scaled)
    units = set()
    for name, cat in zip(names, cats):
        assert set(cat) <= _UNITS and sum(cat.values()) == pytest.approx(1.0), (name, cat)
        units |= set(cat)
    assert units == {"converter", "output_accumulator", "pipeline_registers"}


def test_an_unnamed_accumulator_unit_or_register_is_an_error(monkeypatch):
    import hw.component
    real = hw.component.unit_categories()
    assert energy.energy_units()["Float32Adder"] == "output_accumulator"
    assert energy.energy_units()["BlockConverter"] == "converter"
    monkeypatch.setattr(hw.component, "unit_categories",
                        lambda: {**real, "CarrySaveTree": "accumulators"})
    with pytest.raises(energy.UnmappedError, match=r"^Unit class CarrySaveTree is an "
                       r"accumulator that synth\.energy\.ACCUMULATOR_UNITS does not name$"):
        energy.energy_units()
    # Registers: the names of the PEs' accumulators, and only those.
    assert energy.register_unit("bacc", "accumulators", True) == "block_accumulator"
    assert energy.register_unit("acc_hi", "accumulators", False) == "output_accumulator"
    assert energy.register_unit("psum_out.exact", "accumulators", True) == "block_accumulator"
    assert energy.register_unit("psum_out", "accumulators", False) == "output_accumulator"
    assert energy.register_unit("sel_a0_d1", None, True) == "pipeline_registers"
    with pytest.raises(energy.UnmappedError, match=r"^Accumulator register acc_mid is not "
                       r"named in synth\.energy\.ACCUMULATOR_REGISTERS$"):
        energy.register_unit("acc_mid", "accumulators", True)


# -- the weight-stationary block-end units ----------------------------------------------------------

@pytest.mark.parametrize("rows", [8, 2])
def test_block_end_stream_closes_the_golden_blocks(rows):
    """At every block end the unit's inputs give golden's block term and partial: the
    exact sum scaled and rounded once, added to fp_in, is the next block's fp_in."""
    from golden.binary32 import round_to_binary32
    from golden.gemm import gemm_encoded
    from golden.quant import SCALE_BIAS
    from hw.ws_pe import ws_control_layout, ws_psum_layout
    config = Config(a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(2, 4),
                    rows=rows, cols=2, m_max=6, k_max=256, n_max=4, dataflow="ws")
    assert config.ws_carry_exact == (rows == 2)
    m, k, n = 6, 256, 4
    stream, groups = energy.ws_block_end_stream(config, m, k, n, cycles=100_000)
    ctl = stream["ctl"].astype(np.int64)
    bend = (ctl >> ws_control_layout["bend"].offset) & 1 == 1
    valid = (ctl >> ws_control_layout["valid"].offset) & 1 == 1
    bits = config.block_acc_bits
    exact = np.array([(int(x) >> ws_psum_layout(config)["exact"].offset) & ((1 << bits) - 1)
                      for x in stream["psum_in"]], dtype=object)
    exact = np.where(exact >= 1 << (bits - 1), exact - (1 << bits), exact)
    enc = make_operands(config, m, k, n, seed=0)
    c, terms = gemm_encoded(enc, config, terms=True)
    b_n = terms.shape[0]
    # Every (block, row, column tile) closes once.
    tiles = -(-n // config.cols)
    assert bend.sum() == b_n * m * tiles
    # Where the stream closes block b of row i in column j, in the stream's order.
    t, p, cyc, tile, fold, _, _ = energy._ws_passes(config, m, k, n, 100_000)
    e = config.ws_block_end_rows[0]
    b = (np.minimum(fold * config.ws_fold_groups + e + 1, config.groups(k)) - 1) \
        // config.groups_per_block
    i, j = np.clip(cyc, 0, m - 1), tile * config.cols
    sa = enc.a_scales[i, np.minimum(b, b_n - 1)].astype(np.int64) - SCALE_BIAS
    sw = enc.w_scales[np.minimum(b, b_n - 1), np.minimum(j, n - 1)].astype(np.int64) - SCALE_BIAS
    assert (stream["a_scale"][bend].astype(np.int64) - SCALE_BIAS == sa[bend]).all()
    term = round_to_binary32(exact[bend], config.product_lsb_exp + sa[bend] + sw[bend])
    assert np.array_equal(term, terms[b[bend], i[bend], j[bend]])
    fp = np.array([int(x) for x in stream["fp_in"]], np.uint32).view(np.float32)
    after = fp[bend] + term
    last = b[bend] == b_n - 1
    assert np.array_equal(after[last], c[i[bend][last], j[bend][last]])
    assert (fp[~valid] == 0).all() and valid.sum() >= bend.sum()
    # The unit closes the sums of rows 0 .. e: each issues one K-group per row and pass.
    assert groups == (e + 1) * m * config.schedule.passes(k, n)


@needs_osu
def test_block_end_energy_counts_converter_and_adder():
    config = _cfg("mxfp4_e2m1", dataflow="ws")
    r = energy.block_end_energy(config, OSU, 4000.0, cycles=2000)
    e = r["logic_fj"]
    print({k: round(v) for k, v in e.items()}, r["macs"])
    assert e["converter"] > 0 and e["output_accumulator"] > 0 and e["clock"] > 0
    assert e["multipliers"] == e["sparse_select"] == e["block_accumulator"] == 0
    sched = config.schedule
    m, k, n = config.m_max, config.k_max, config.n_max
    assert r["macs"] == r["valid_cycles"] * sched.useful_macs(m, k, n) * config.n_keep \
        / sched.issued(m, k, n)


def test_ws_mx_report_adds_the_block_end_per_mac(monkeypatch):
    import synth.energy_report as er
    config = Config(a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(2, 4),
                    rows=8, cols=8, dataflow="ws")
    zero = dict.fromkeys(energy.ENERGY_CATEGORIES, 0.0)
    pe = {"logic_fj": {**zero, "multipliers": 4000.0, "clock": 2000.0}, "macs": 2.0,
          "cycles": 10, "sim_seconds": 0.1}
    be = {"logic_fj": {**zero, "converter": 600.0, "output_accumulator": 200.0}, "macs": 8.0,
          "cycles": 10, "sim_seconds": 0.1, "cells": 5}
    monkeypatch.setattr(er, "fmax_period", lambda *a, **kw: 5000.0)
    monkeypatch.setattr(er, "pe_energy", lambda *a, **kw: pe)
    monkeypatch.setattr(er, "block_end_energy", lambda *a, **kw: be)
    lib = type("Lib", (), {"name": "fake", "voltage": 1.0})()
    monkeypatch.setattr("synth.timing.default_clock_ps", lambda lib: 4000.0)
    r = er.energy_report(config, lib)
    bd = r["energy_breakdown"]
    assert (bd["multipliers"], bd["clock"]) == (2.0, 1.0)
    assert (bd["converter"], bd["output_accumulator"]) == (0.075, 0.025)
    assert r["logic_pj_per_mac"] == pytest.approx(3.1)
    assert r["block_end"]["pj_per_mac"] == pytest.approx(0.1)
    assert r["block_end"]["pes_per_unit"] == config.ws_block_end_rows[0] + 1
    assert "block-end unit" in r["scope"] and "not included" not in r["scope"]
    assert (r["period_ps"], r["fmax_mhz"]) == (5000.0, 200.0)


# -- the weight-stationary PE's partial sums (issue #14: psum_in is not the PE's register) ------

def _signed(x, bits):
    x = int(x) & ((1 << bits) - 1)
    return x - (1 << bits) if x >> (bits - 1) else x


def test_ws_int8_pe_receives_the_sums_of_the_rows_above():
    """Independent of golden.psum: row r's psum_in for activation row i in a pass is the
    int32 GEMM of the activations masked to the pass's K-groups above row r."""
    from dataclasses import replace
    from golden.gemm import gemm_encoded
    from hw.ws_pe import ws_control_layout
    config = Config(a_format="int8", w_format="int8", sparsity=(2, 4), rows=4, cols=2,
                    m_max=3, k_max=64, n_max=4, dataflow="ws")
    m, k, n = 3, 64, 4
    f_groups, mg = config.ws_fold_groups, config.m_group
    enc = make_operands(config, m, k, n, seed=0)
    t, p, c, tile, fold, _, _ = energy._ws_passes(config, m, k, n, 100_000)
    assert energy.ws_energy_row(config) == f_groups // 2
    for r in range(f_groups):
        stream, valid = energy.ws_pe_stream(config, m, k, n, cycles=100_000, row=r)
        ctl = stream["ctl"].astype(np.int64)
        assert valid == ((ctl >> ws_control_layout["valid"].offset) & 1).sum() \
            == config.schedule.passes(k, n) * m
        got = np.array([_signed(x, config.acc_bits) for x in stream["psum_in"]])
        want = np.zeros(len(t), np.int64)
        for f in np.unique(fold):
            a = np.zeros_like(enc.a_codes)
            lo, hi = f * f_groups * mg, (f * f_groups + r) * mg
            a[:, lo:hi] = enc.a_codes[:, lo:hi]
            ref, _ = gemm_encoded(replace(enc, a_codes=a), config, terms=True)
            on = (t >= 0) & (c < m) & (fold == f)
            want[on] = ref[c[on], tile[on] * config.cols]
        assert np.array_equal(got, want), r
        assert (r == 0) == (not got.any())


def test_ws_mx_pe_sums_restart_below_a_block_end():
    """MX with two blocks per pass: row r's psum_in is the sum of the K-groups of rows
    s .. r-1 of the pass, s the first row of r's block (the block-end unit above
    restarts the exact sum at zero)."""
    from golden.psum import group_sums
    config = Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4),
                    block_size=16, rows=8, cols=2, m_max=3, k_max=128, n_max=2,
                    dataflow="ws")
    m, k, n = 3, 128, 2
    gpb = config.groups_per_block
    assert config.ws_block_end_rows == (gpb - 1, 2 * gpb - 1) and not config.ws_carry_exact
    assert energy.ws_energy_row(config) == gpb // 2
    enc = make_operands(config, m, k, n, seed=0)
    sums = group_sums(enc, config, 0)
    t, p, c, tile, fold, _, _ = energy._ws_passes(config, m, k, n, 100_000)
    on = (t >= 0) & (c < m)
    bits = config.block_acc_bits
    for r in range(config.ws_fold_groups):
        stream, _ = energy.ws_pe_stream(config, m, k, n, cycles=100_000, row=r)
        got = np.array([_signed(x, bits) for x in stream["psum_in"]], dtype=object)
        s = r // gpb * gpb
        for x in np.flatnonzero(on):
            g0 = fold[x] * config.ws_fold_groups
            assert got[x] == sum(sums[g0 + q, c[x]] for q in range(s, r)), (r, x)
        assert (got[~on] == 0).all()
        assert (r % gpb == 0) == (not got.any())


def test_ws_mx_pe_refuses_operands_with_specials():
    config = _cfg("mxfp8_e4m3", dataflow="ws")
    with pytest.raises(ValueError, match=r"^The weight-stationary PE energy stream models "
                       r"finite operands only, and data class specials has NaN or Inf codes$"):
        energy.ws_pe_stream(config, 4, 256, 4, data="specials")


@needs_osu
def test_ws_energy_design_leaves_psum_in_to_the_pe_above():
    """psum_in drives the PE's adder straight (no register: it is the PE above's
    psum_out), every other input drives a link register; psum_in's net energy is the
    adder's unit, not a pipeline register's."""
    config = _cfg("mxfp4_e2m1", dataflow="ws")
    net = energy.Netlist(energy.mapped_pe(config, OSU, 4000.0), OSU, config.scaled)
    ports = net.module["ports"]
    seq = {k for k, t in enumerate(net.types) if OSU.cells[t].sequential}
    sinks = lambda port: [k for b in ports[port]["bits"] for k, _ in net.sinks.get(b, ())]  # noqa: E731
    units = lambda port: set().union(*(net.categories[k] for k in sinks(port)))  # noqa: E731
    assert sinks("psum_in") and not set(sinks("psum_in")) & seq
    assert units("psum_in") == {"block_accumulator"}
    for port in ("a", "ctl", "ld_w"):
        assert sinks(port) and units(port) == {"pipeline_registers"}, port
    toggles = {("psum_in", b): 10 for b in range(len(ports["psum_in"]["bits"]))}
    e, sw = energy.energy_of(net, {}, toggles, 1, 4000.0)
    assert sw > 0 and e["block_accumulator"] > 0
    assert all(v == 0 for c, v in e.items() if c not in ("block_accumulator", "clock",
                                                         "leakage"))
