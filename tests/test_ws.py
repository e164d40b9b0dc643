"""The weight-stationary engine (``dataflow="ws"``): config model, Amaranth-simulator
cases against golden, generation, and Verilator runs bit-identical to the
output-stationary engine on the same stimulus.

Expected delays and cycle counts come from ``Config``'s ``ws_*`` model, never from
numbers typed in here; the Verilator regression in ``tests/test_sim.py`` runs every
configuration class in both dataflows.
"""

import json
from dataclasses import replace
from math import ceil

import numpy as np
import pytest

from engine_harness import check_result, random_encoded, run_engine
from golden import Config
from golden import counters as counter_table
from golden.gemm import gemm_encoded
from hw.ws import WSArray, WSBlockEnd, WSEngine, WSPE


def _ws(**kw):
    return Config(dataflow="ws", **kw)


# -- the config model -----------------------------------------------------------------------

def test_config_accepts_ws():
    c = _ws(rows=4, cols=2)
    assert c.dataflow == "ws"
    assert c.name.startswith("nmmx_ws_4x2_")
    assert Config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw,fold,ends,carry", [
    # block of 8 groups = 8 rows: one block end at the bottom, nothing carried.
    (dict(rows=8, cols=8, sparsity=(2, 4), block_size=32), 8, (7,), False),
    # two blocks per pass: an end unit inside the column and one at the bottom.
    (dict(rows=4, cols=2, sparsity=(2, 4), block_size=8), 4, (1, 3), False),
    # 16 rows, blocks of 2 groups: eight end units.
    (dict(rows=16, cols=4, sparsity=(1, 16), block_size=32), 16, (1, 3, 5, 7, 9, 11, 13, 15),
     False),
    # rows do not hold a whole block: blocks span passes, exact partials are carried.
    (dict(rows=2, cols=2, sparsity=(1, 2), block_size=8), 2, (1,), True),
    # 3 rows, blocks of 8 groups: 2 rows in use so that passes tile blocks.
    (dict(rows=3, cols=2, sparsity=(1, 4), block_size=32), 2, (1,), True),
    # 3 rows, blocks of 2 groups: 2 rows in use, blocks never straddle passes.
    (dict(rows=3, cols=1, sparsity=(2, 2), block_size=4), 2, (1,), False),
    # int8 has no blocks: every row, no end units.
    (dict(rows=3, cols=2, a_format="int8", w_format="int8", block_size=32), 3, (), False),
])
def test_fold_geometry(kw, fold, ends, carry):
    c = _ws(**kw)
    assert c.ws_fold_groups == fold
    assert c.ws_block_end_rows == ends
    assert c.ws_carry_exact == carry
    gpb = c.groups_per_block
    if c.scaled:
        # Passes tile blocks: a pass is whole blocks or a whole fraction of one.
        assert fold % gpb == 0 or gpb % fold == 0
        assert c.ws_fold_groups - 1 in ends          # the bottom always ends a block
    assert c.schedule.row_delay(0) == c.buffer_read_latency
    for r in range(1, fold):
        step = 1 + (c.ws_block_end_latency if r - 1 in ends else 0)
        assert c.schedule.row_delay(r) == c.schedule.row_delay(r - 1) + step


def test_cycle_model_parts():
    # Worked by hand for 8x8, mxfp8 2:4, block 32 (8 groups per block), 64x512x64:
    # F = 8 rows in use, one block-end unit below row 7; G = 512/4 = 128 groups,
    # 128/8 = 16 folds x 8 column tiles = 128 passes.
    c = _ws(rows=8, cols=8, m_max=64, k_max=512, n_max=64)
    s = c.schedule
    m, k, n = 64, 512, 64
    assert s.folds(k) == 16 and s.passes(k, n) == s.tiles(m, k, n) == 128
    # Row r sees its activation 1 (buffer read) + r cycles after issue; no block end
    # lies above row 7, so row 7 is 8 cycles late.
    assert [s.row_delay(r) for r in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]
    # Bottom: row 7 (8) + WSPE (select, multiply, psum: 3) + block-end unit (term and
    # output registers 2, converter 3, adder 6: 11) = 22; nothing exact is carried
    # (no join register); the state joins below row 7, after the WSPE: 8 + 3 = 11.
    assert s.bottom_delay == 22 and c.ws_inject_row == 7 and s.inject_delay == 11
    assert c.ws_join_stages == 0
    # max(F = 8, row_delay(7) = 8, 22 - 11 + 2 = 13) = 13.
    assert s.min_pass == 13
    assert [s.pass_period(mm) for mm in (1, 5, 8, 13, 64)] == [16, 16, 16, 16, 64]
    # 1 (issue) + 8 (first load) + 127*64 + 63 + 22 + 7 = 8229.
    assert s.cycles(m, k, n) == 8229
    # 128 passes x 64 rows issue; the other 37 busy cycles are fill and drain.
    assert s.stall(m, k, n) == 37
    # 128 groups x 2 slots x 64 x 64, the same as output stationary.
    assert s.issued(m, k, n) == 1_048_576 == replace(c, dataflow="os").schedule.issued(m, k, n)
    assert s.utilization(m, k, n) == 1_048_576 / (8 * 8 * 2 * 8229)
    # Fill and drain are paid once: halving K halves the passes, not the overhead.
    assert s.cycles(m, 256, n) == 8229 - 64 * 64


def test_scalesim_follows_dataflow():
    ws = _ws(rows=8, cols=4, sparsity=(2, 4), m_max=64, k_max=512, n_max=64)
    os_ = replace(ws, dataflow="os")
    m, k, n = 40, 300, 20
    # SCALE-Sim's own totals (tests/test_cycle_figures.py pins them against the tool):
    # K in groups of 4, not padded to the block of 32.
    assert ws.schedule.scalesim_cycles(m, k, n) == (ceil(k / (8 * 4)) * ceil(n / 4)
                                                 * (2 * 8 + 4 + m - 2) - 1)
    assert os_.schedule.scalesim_cycles(m, k, n) == (ceil(m / 8) * ceil(n / 4)
                                            * (ceil(k / 4) + 8 + 4 - 2)) - 1


def test_components_need_config():
    for cls in (WSPE, WSArray, WSEngine, WSBlockEnd):
        with pytest.raises(TypeError, match=r"^\w+ needs a golden.Config, not 3$"):
            cls(3)
    with pytest.raises(ValueError, match=r"^WSBlockEnd needs an MX configuration, not "
                                         r"a_format=int8 with w_format=int8$"):
        WSBlockEnd(_ws(a_format="int8", w_format="int8"))


# -- Amaranth simulator: small engines against golden -----------------------------------------

AMARANTH_CASES = [
    # (config, shapes): K not a multiple of the block, M/N not multiples of R/C, 1x1x1.
    (_ws(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4),
         block_size=8, m_max=3, k_max=16, n_max=4), [(3, 13, 4), (2, 16, 3)]),
    (_ws(rows=2, cols=2, a_format="mxfp8_e4m3", w_format="mxfp8_e5m2", sparsity=(1, 2),
         block_size=8, m_max=5, k_max=40, n_max=3), [(5, 40, 3), (1, 1, 1), (4, 21, 2)]),
    (_ws(rows=4, cols=2, a_format="mxfp6_e3m2", w_format="mxfp4_e2m1", sparsity=(2, 4),
         block_size=8, m_max=6, k_max=40, n_max=3), [(6, 40, 3), (2, 9, 3)]),
    (_ws(rows=3, cols=2, a_format="mxint8", w_format="mxint4", sparsity=(1, 4),
         block_size=32, m_max=7, k_max=70, n_max=5), [(7, 70, 5), (3, 33, 2)]),
    (_ws(rows=3, cols=1, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2", sparsity=(2, 2),
         block_size=4, m_max=4, k_max=20, n_max=2), [(4, 20, 2), (1, 3, 1)]),
    (_ws(rows=1, cols=1, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(1, 1),
         block_size=4, m_max=3, k_max=12, n_max=2), [(3, 12, 2)]),
    (_ws(rows=2, cols=3, a_format="int8", w_format="int8", sparsity=(2, 4), block_size=8,
         m_max=5, k_max=24, n_max=7), [(5, 19, 7), (3, 3, 4)]),
    # m == ws_min_pass == ws_row_delay(F-1): passes as short as the weight registers
    # allow (the next-but-one pass overwrites them right after their last use).
    (_ws(rows=4, cols=2, a_format="mxfp8_e4m3", w_format="mxfp4_e2m1", sparsity=(2, 4),
         block_size=16, m_max=9, k_max=64, n_max=3), [(4, 64, 3), (9, 50, 3), (1, 64, 2)]),
]


@pytest.mark.parametrize("specials", [False, True], ids=["finite", "specials"])
@pytest.mark.parametrize("config,shapes", AMARANTH_CASES, ids=[c.name for c, _ in AMARANTH_CASES])
def test_engine_matches_golden(config, shapes, specials):
    rng = np.random.default_rng(7 + specials)
    runs = [random_encoded(config, m, k, n, rng, specials=specials) for m, k, n in shapes]
    nonzero = 0
    for enc, (c, counters) in zip(runs, run_engine(config, runs)):
        nonzero += check_result(config, enc, c, counters)
    # The stimulus really reaches the arithmetic (not an all-zero result).
    assert nonzero


def test_block_order_is_k_order():
    """Terms that cancel only in K order: 2**24 + 1 - 2**24 in binary32 is 0 when added in
    order (1 is lost against 2**24), 1 when the late blocks were summed first.  Blocks span
    passes and pass boundaries here, so a wrong order in the column or across the
    accumulator memory would show."""
    config = AMARANTH_CASES[1][0]             # blocks of 4 groups on 2 rows: carried
    rng = np.random.default_rng(3)
    enc = random_encoded(config, 1, 24, 1, rng)
    bs = config.block_size
    enc.a_codes[:] = 0
    enc.w_values[:] = 0
    # E4M3 code 0x38 is 1.0; E5M2 code 0x3C is 1.0; indices 0 select element 0.
    enc.w_indices[:] = 0
    enc.a_codes[0, 0::config.m_group] = 0x38
    g_per_b = config.groups_per_block
    enc.w_values[0, 0, 0] = 0x3C                    # block 0: +1 * 2**(sa+sw)
    enc.w_values[g_per_b, 0, 0] = 0x3C              # block 1: +1
    enc.w_values[2 * g_per_b, 0, 0] = 0xBC          # block 2: -1
    enc.a_scales[:] = 127
    enc.w_scales[:, 0] = [127 + 24, 127, 127 + 24][:enc.w_scales.shape[0]]
    assert enc.k // bs == 3
    (c, _), = run_engine(config, [enc])
    want = gemm_encoded(enc, config)
    assert want[0, 0] == 0.0
    np.testing.assert_array_equal(c.view(np.uint32), want.view(np.uint32))


# -- generation ---------------------------------------------------------------------------------

def test_generate_same_interface(tmp_path):
    from gen.generate import generate
    from hw.lint import lint_verilog
    ws = _ws(rows=2, cols=3, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2", m_max=5,
             k_max=96, n_max=7)
    os_ = replace(ws, dataflow="os")
    infos = {}
    for c in (ws, os_):
        v, j = generate(c, tmp_path / c.dataflow)
        infos[c.dataflow] = json.loads(j.read_text())
        text = v.read_text()
        assert f"module {c.name}_pe" in text
        if c.dataflow == "ws":
            ok, log = lint_verilog(v, c.name)
            assert ok, log
    # Deterministic: a second generation is byte-identical.
    v1, j1 = generate(ws, tmp_path / "ws")
    v2, j2 = generate(ws, tmp_path / "again")
    assert v1.read_bytes() == v2.read_bytes() and j1.read_bytes() == j2.read_bytes()
    a, b = infos["ws"], infos["os"]
    # The same ports but the accumulator memories' access counters, which only WS has.
    acc = ["cnt_rd_acc", "cnt_wr_acc"]
    assert [p for p in a["ports"] if p["name"] not in acc] == b["ports"]
    assert a["counters"] == b["counters"] + acc
    assert a["access_counters"] == {**b["access_counters"], "cnt_rd_acc": ["acc", "reads"],
                                    "cnt_wr_acc": ["acc", "writes"]}
    assert a["word_layouts"] == b["word_layouts"]
    for name in ("a_data", "a_scale", "w_data", "w_scale", "c"):
        assert a["buffers"][name] == b["buffers"][name]
    assert "acc" in a["buffers"] and "acc" not in b["buffers"]
    assert a["timing"]["formula"] == ws.schedule.formula != os_.schedule.formula
    assert a["timing"]["ws_bottom_delay"] == ws.schedule.bottom_delay
    assert a["config"]["dataflow"] == "ws"


@pytest.mark.parametrize("config", [AMARANTH_CASES[i][0] for i in (1, 2, 3, 6)],
                         ids=lambda c: c.name)
def test_lint(tmp_path, config):
    """Carried exact partials, several block ends per column, idle rows, int8."""
    from gen.generate import generate
    from hw.lint import lint_verilog
    v, _ = generate(config, tmp_path)
    ok, log = lint_verilog(v, config.name)
    assert ok, log


# -- Verilator: both dataflows on the same stimulus ---------------------------------------------

def _sim_config(df, **kw):
    base = dict(rows=2, cols=3, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2",
                sparsity=(2, 4), m_max=5, k_max=96, n_max=7)
    base.update(kw)
    return Config(dataflow=df, **base)


@pytest.mark.parametrize("kw", [
    {},                                                            # shares test_sim's build
    dict(rows=2, cols=2, a_format="mxint4", w_format="mxint8", sparsity=(2, 8),
         block_size=64, k_max=150, m_max=5, n_max=5),               # blocks span passes
], ids=["2x3_e5m2", "2x2_carry"])
def test_os_and_ws_bit_identical(kw):
    from sim.run import Case, simulate_cases
    from sim.stimulus import make_operands
    ws, os_ = _sim_config("ws", **kw), _sim_config("os", **kw)
    shapes = [(ws.m_max, ws.k_max, ws.n_max), (2 * ws.m_max + 1, ws.k_max - 7, ws.n_max + 2),
              (1, 1, 1)]
    datas = ["specials", "gaussian", "gaussian"]
    encs = [make_operands(ws, m, k, n, d, s) for s, ((m, k, n), d) in
            enumerate(zip(shapes, datas))]
    reports = {}
    for c in (ws, os_):
        cases = [Case(e.m, e.k, e.n, data=d, seed=s, enc=e)
                 for s, (e, d) in enumerate(zip(encs, datas))]
        reports[c.dataflow] = simulate_cases(c, cases)
    for rw, ro, enc in zip(reports["ws"], reports["os"], encs):
        assert rw["passed"] and ro["passed"]
        np.testing.assert_array_equal(rw["c_bits"], ro["c_bits"])
        np.testing.assert_array_equal(rw["c_bits"],
                                      gemm_encoded(enc, ws).view(np.uint32))
        assert rw["cycles"] == rw["model_cycles"] == sum(ws.schedule.cycles(*r["shape"])
                                                         for r in rw["runs"])
        assert rw["issued_macs"] == ro["issued_macs"]
        assert rw["scalesim_cycles"] == sum(ws.schedule.scalesim_cycles(*r["shape"])
                                            for r in rw["runs"])
        assert rw["scalesim_cycles"] != ro["scalesim_cycles"]
        # Every counter equals the model in both dataflows; the host's writes and the C
        # writes are the same, the array's reads are not, and only WS has accumulators.
        for r, c in ((rw, ws), (ro, os_)):
            assert r["counters"] == r["model_counters"] == {
                name: sum(counter_table.expected(c, *x["shape"])[name] for x in r["runs"])
                for name in counter_table.names(c)}
        for buf in ("a_data", "w_data", "a_scale", "w_scale", "c"):
            assert rw["buffer_accesses"][buf]["writes"] == ro["buffer_accesses"][buf]["writes"]
        assert rw["buffer_accesses"]["a_data"]["reads"] != ro["buffer_accesses"]["a_data"]["reads"]
        assert "acc" in rw["buffer_accesses"] and "acc" not in ro["buffer_accesses"]


# -- synthesis ------------------------------------------------------------------------------------

def test_synth_compare_dataflows(tmp_path, capsys):
    """``python -m synth --compare-dataflows``: both dataflows of one config side by side;
    the WS array converts once per block end and column instead of in every PE."""
    from synth.__main__ import main
    out = tmp_path / "area.json"
    argv = ["--top", "array", "--rows", "4", "--cols", "2", "--format", "mxfp4_e2m1",
            "--sparsity", "2:4", "--block-size", "8", "--compare-dataflows", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "== dataflow os: nmmx_os_4x2_" in text and "== dataflow ws: nmmx_ws_4x2_" in text
    reports = json.loads(out.read_text())
    assert set(reports) == {"os", "ws"}
    ws = Config.from_dict(reports["ws"]["config"])
    assert ws.dataflow == "ws" and reports["os"]["config"]["dataflow"] == "os"
    count = lambda r, cls: sum(m["count"] for label, m in r["modules"].items()
                               if label.split("#")[0] == cls)
    ends = len(ws.ws_block_end_rows) * ws.cols
    assert count(reports["ws"], "WSBlockEnd") == ends == 4
    assert count(reports["ws"], "BlockConverter") == ends
    assert count(reports["ws"], "Float32Adder") == ends
    assert count(reports["ws"], "WSPE") == ws.ws_fold_groups * ws.cols
    assert count(reports["os"], "BlockConverter") == ws.rows * ws.cols
    assert reports["ws"]["pe_breakdown"]["scale_and_convert"] == 0
    assert reports["os"]["pe_breakdown"]["scale_and_convert"] > 0
    for df in ("os", "ws"):
        assert f"\n{df:<9} array" in text


def test_dse_sweeps_both_dataflows(tmp_path, capsys):
    """``python -m dse --dataflow os,ws``: one point per dataflow, each with its own
    cycle model and SCALE-Sim estimate."""
    import csv
    from dse.__main__ import main
    from nmmx.flags import run_cli
    out = tmp_path / "dse"
    argv = ["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--rows", "2", "--cols", "2",
            "--dataflow", "os,ws", "--m-max", "8", "--k-max", "64", "--n-max", "8",
            "--gemm", "8x64x8", "--eval-shape", "8x64x8", "--no-plots", "--no-progress",
            "-o", str(out)]
    assert run_cli(main, argv) == 0, capsys.readouterr().err
    with open(out / "results.csv") as f:
        rows = {r["dataflow"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"os", "ws"}
    for df, row in rows.items():
        cfg = _sim_config(df, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", rows=2, cols=2,
                          m_max=8, k_max=64, n_max=8)
        assert row["name"] == cfg.name
        assert int(row["cycles@8x64x8"]) == cfg.schedule.cycles(8, 64, 8)
        assert int(row["scalesim_cycles@8x64x8"]) == cfg.schedule.scalesim_cycles(8, 64, 8)
    assert float(rows["ws"]["logic_ge"]) != float(rows["os"]["logic_ge"])
