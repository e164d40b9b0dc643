"""Tests of the Yosys area flow (synth/).

The structural tests synthesize small real designs (PEs, 1x1..2x2 arrays) into one
session cache, so modules shared between configs are synthesized once; the cache tests
use their own empty cache.  Run: ``python -m pytest tests/test_synth.py -q``.
"""

import json
import re

import pytest
from amaranth import Cat, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config
from synth import __main__ as cli
from synth import area, attribution, estimate, rtlil, yosys
from synth.liberty import Liberty


# -- small designs of our own -------------------------------------------------------------

class _Mul(wiring.Component):
    def __init__(self, width):
        self.width = width
        super().__init__({"x": In(width), "y": In(width), "p": Out(2 * width)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self.x * self.y)
        return m


class _Pair(wiring.Component):
    """Two identical multipliers wired with swapped operands (different port use order),
    one wider multiplier, and a registered sum."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "s": Out(24)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.m0 = m0 = _Mul(8)
        m.submodules.m1 = m1 = _Mul(8)
        m.submodules.wide = wide = _Mul(12)
        m.d.comb += [m0.x.eq(self.a), m0.y.eq(self.b), m1.y.eq(self.a), m1.x.eq(self.b),
                     wide.x.eq(Cat(self.a, self.b[:4])), wide.y.eq(Cat(self.b, self.a[:4]))]
        m.d.sync += self.s.eq(m0.p + m1.p + wide.p)
        return m


class _TwoRefs(wiring.Component):
    """Two references to a separately converted 8-bit ``_Mul`` module named ``mul8``."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "s": Out(17)})

    def elaborate(self, platform):
        m = Module()
        p0, p1 = Signal(16), Signal(16)
        m.submodules.u0 = Instance("mul8", i_x=self.a, i_y=self.b, o_p=p0)
        m.submodules.u1 = Instance("mul8", i_x=self.b, i_y=self.b, o_p=p1)
        m.d.comb += self.s.eq(p0 + p1)
        return m


class _WithMemory(wiring.Component):
    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        abits = (depth - 1).bit_length()
        super().__init__({"we": In(1), "wa": In(abits), "wd": In(width), "ra": In(abits),
                          "rd": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.en.eq(self.we), wp.addr.eq(self.wa), wp.data.eq(self.wd),
                     rp.addr.eq(self.ra), self.rd.eq(rp.data)]
        return m


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One cache for the structural tests: shared modules are synthesized once."""
    return tmp_path_factory.mktemp("synth_cache")


@pytest.fixture(scope="session")
def pe_area(cache):
    memo = {}

    def area(**kw):
        cfg = _cfg(**kw)
        if cfg not in memo:
            memo[cfg] = estimate.estimate_area(cfg, top="pe", cache=cache)
        return memo[cfg]
    return area


def _cfg(format=None, **kw):
    """A Config; ``format`` sets both operands' format."""
    if format is not None:
        kw.update(a_format=format, w_format=format)
    return Config(**kw)


def _pe_total(report):
    return report["modules"]["PE"]["ge_hier"]


# -- the liberty file and the command list ----------------------------------------------------

def test_liberty_cells_in_gate_equivalents():
    lib = Liberty.read()
    assert lib.area["NAND2"] == 1.0
    assert lib.area["INV"] < lib.area["NAND2"] == lib.area["NOR2"] < lib.area["AND2"]
    assert lib.area["AND2"] < lib.area["XOR2"] <= lib.area["MUX2"] < lib.area["DFF"]
    assert lib.area["DFF"] < lib.area["DFFR"]
    assert lib.sequential == {"DFF", "DFFR", "DFFS"}
    assert all(lib.outputs[c] == ("Q" if c in lib.sequential else "Y") for c in lib.area)


def test_flow_commands_keep_memories_and_map_to_the_library():
    cmds = yosys.flow_commands("in.il", "cells.lib", ".")
    assert "memory -nomap" in cmds and "flatten" not in cmds
    assert "memory" not in cmds and "memory_map" not in cmds
    order = [next(i for i, c in enumerate(cmds) if c.startswith(p))
             for p in ("read_rtlil", "proc", "memory -nomap", "techmap", "dfflibmap -liberty",
                       "abc -liberty", "tee -q -o \"area.json\" stat -liberty")]
    assert order == sorted(order)
    assert any(c.endswith("stat -tech cmos -json") for c in cmds)


# -- deduplication ---------------------------------------------------------------------------

def test_identical_instances_share_one_module_and_different_ones_do_not():
    text, classes = rtlil.rtlil_of(_Pair(), "top")
    mods = rtlil.split_modules(text)
    assert set(mods) == {"top", "top.m0", "top.m1", "top.wide"}
    assert mods["top.m0"].key == mods["top.m1"].key      # same body, other port order
    assert mods["top.wide"].key != mods["top.m0"].key    # other width
    assert classes["top.m0"] == classes["top.wide"] == "_Mul"
    # The salt (flow settings) is part of every key.
    assert rtlil.split_modules(text, salt="x")["top.m0"].key != mods["top.m0"].key


def test_small_design_report(tmp_path):
    r = area.synthesize(_Pair(), name="pair", cache=tmp_path)
    mods = r["modules"]
    narrow = mods[next(k for k, m in mods.items() if m["example"] in ("pair.m0", "pair.m1"))]
    wide = mods[next(k for k, m in mods.items() if m["example"] == "pair.wide")]
    assert narrow["count"] == 2 and wide["count"] == 1 and len(mods) == 3
    assert narrow["class"] == wide["class"] == "_Mul"
    # One Yosys run per unique module (submodules are blackbox stubs there).
    assert r["synthesized"] == 3 and r["yosys_runs"] == 3
    # A 12x12 multiplier is larger than an 8x8 one; the parent's own area is its adder
    # and 24 flip-flops (at least 24 DFF areas).
    assert wide["ge"] > 1.5 * narrow["ge"] > 0
    assert mods["_Pair"]["ge"] >= 24 * Liberty.read().area["DFF"]
    assert r["logic_ge"] == pytest.approx(sum(m["ge_total"] for m in mods.values()), abs=0.05)
    assert r["logic_ge"] == pytest.approx(mods["_Pair"]["ge_hier"], abs=0.05)
    assert r["buffer_bits"] == 0 and r["total_ge"] == r["logic_ge"]
    assert r["transistors"] > 4 * r["logic_ge"] * 0.5


def test_separately_converted_module_counts_once_per_reference(tmp_path):
    alone = area.synthesize(_Mul(8), name="m", cache=tmp_path)
    r = area.synthesize(lambda: {"refs": _TwoRefs(), "mul8": _Mul(8)}, name="refs",
                        cache=tmp_path)
    mods = r["modules"]
    assert set(mods) == {"_TwoRefs", "_Mul"}
    # The referenced module is the very netlist of _Mul(8) (a cache hit), counted twice.
    assert mods["_Mul"]["key"] == alone["modules"]["_Mul"]["key"]
    assert mods["_Mul"]["count"] == 2 and r["synthesized"] == 1
    assert r["instances"]["refs.u0"] == r["instances"]["refs.u1"] == mods["_Mul"]["key"]
    assert mods["_Mul"]["example"] == "refs.u0"
    assert r["logic_ge"] == pytest.approx(
        mods["_TwoRefs"]["ge"] + 2 * alone["logic_ge"], abs=0.05)
    assert r["logic_ge"] == pytest.approx(mods["_TwoRefs"]["ge_hier"], abs=0.05)


def test_module_dict_must_contain_the_top(tmp_path):
    part = _Mul(4)
    part._MustUse__silence = True       # rejected before elaboration
    with pytest.raises(ValueError,
                       match=r"^The design's modules \['x'\] do not include the top 'top'$"):
        area.synthesize({"x": part}, name="top", cache=tmp_path)


def test_memories_are_counted_in_bits_not_flip_flops(tmp_path):
    small = area.synthesize(_WithMemory(16, 64), name="m", cache=tmp_path)
    big = area.synthesize(_WithMemory(16, 256), name="m", cache=tmp_path)
    assert small["buffer_bits"] == 16 * 64 and big["buffer_bits"] == 16 * 256
    assert big["buffer_ge"] == 16 * 256 * area.SRAM_GE_PER_BIT
    assert big["total_ge"] == pytest.approx(big["logic_ge"] + big["buffer_ge"])
    # 4096 bits as flip-flops would be > 20000 GE; the logic left is tiny.
    assert big["logic_ge"] < 100 and small["logic_ge"] < 100


# -- the real PE, array and engine ----------------------------------------------------------

def test_fp4_pe_is_smaller_than_fp8_pe(pe_area):
    fp4 = pe_area(format="mxfp4_e2m1", sparsity=(2, 4))
    fp8 = pe_area(format="mxfp8_e4m3", sparsity=(2, 4))
    assert _pe_total(fp4) < _pe_total(fp8)
    assert fp4["pe_breakdown"]["multipliers"] < fp8["pe_breakdown"]["multipliers"]


def test_pe_area_orders_by_sparsity(pe_area):
    dense2 = _pe_total(pe_area(sparsity=(2, 2)))
    sparse = _pe_total(pe_area(sparsity=(2, 4)))
    dense4 = _pe_total(pe_area(sparsity=(4, 4)))
    assert dense2 < sparse < dense4


def test_pe_breakdown_comes_from_the_synthesized_pe(pe_area):
    r = pe_area(sparsity=(2, 4))
    pe = r["pe_breakdown"]
    assert set(attribution.PE_CATEGORIES) <= set(pe)
    # Top = PE: the categories partition exactly the PE's synthesized area.
    assert sum(pe.values()) == pytest.approx(_pe_total(r), abs=0.1)
    mods = r["modules"]
    assert pe["multipliers"] == pytest.approx(
        mods["Multiplier"]["ge_hier"] * mods["Multiplier"]["count"], abs=0.1)
    assert pe["sparse_select"] >= mods["SparseSelect"]["ge"] > 0
    assert pe["scale_and_convert"] >= mods["BlockConverter"]["ge"] > 0
    assert pe["accumulators"] > mods["Float32Adder"]["ge"] > 0
    assert pe["pipeline_registers"] > 0
    assert mods["Multiplier"]["count"] == 2
    dense = pe_area(sparsity=(2, 2))
    assert "SparseSelect" not in dense["modules"]
    assert dense["pe_breakdown"]["sparse_select"] == 0


def _pe_report(cache, config):
    """The raw :func:`synth.area.synthesize` report of ``config``'s PE (with ``_results``)."""
    return area.synthesize(lambda: estimate.build_parts(config, "pe"), name=config.name,
                           cache=cache, design_key=estimate._design_key(config, "pe"))


#: The registers of the WS mxfp4_e2m1 2:4 PE that declare no category.
_WS_PIPELINE_GROUPS = ("weight_value0", "weight_value1", "sel_a0_d1", "sel_a1_d1",
                       "sel_w0_d1", "sel_w1_d1", "prod0_d1", "prod1_d1", "neg0_d1",
                       "neg1_d1", "valid_d1", "valid_d2")


def test_pe_breakdown_reads_the_declared_categories(cache):
    # The weight-stationary mxfp4_e2m1 2:4 PE (1,015.90 GE, pipelined), worked from its
    # netlist.  multipliers: two Multipliers (83.60 GE each with their ElementDecoders)
    # = 167.20.  sparse_select: the SparseSelect (55.92) and the logic feeding it (9.32)
    # plus the index registers declared sparse_select (weight_meta0/1: 33.91 + 33.69 with
    # their load muxes) = 132.84.  accumulators: the psum_out register (declared) with its
    # carry-save adder, 328.46.  pipeline: registers that declare nothing: the weight
    # values weight_value0/1 (67.38 + 65.15), the front-end cut sel_a0/1 and sel_w0/1
    # (25.36 x 2 + 32.35 x 2), the products prod0/1_d1 (57.05 x 2), their signs neg0/1_d1
    # and valid_d1/d2 (6.34 each) = 387.40.
    config = Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4),
                    dataflow="ws")
    r = _pe_report(cache, config)
    want = {"multipliers": 167.20, "sparse_select": 132.84, "scale_and_convert": 0.0,
            "accumulators": 328.46, "pipeline_registers": 387.40, "other": 0.0}
    got = attribution.pe_breakdown(r, config)
    assert got == pytest.approx(want, abs=0.01)
    assert sum(want.values()) == pytest.approx(r["total_ge"], abs=0.02)
    (pe_key,) = {k for p, k in r["instances"].items() if r["_classes"][p] == "WSPE"}
    groups = r["_results"][pe_key]["groups"]
    assert {g: v.get("category") for g, v in groups.items() if not g.startswith("sub:")} == {
        "psum_out": "accumulators", "weight_meta0": "sparse_select",
        "weight_meta1": "sparse_select", **dict.fromkeys(_WS_PIPELINE_GROUPS)}

    def ge(name):
        return groups[name]["ff"] + groups[name]["comb"]
    assert got["accumulators"] == pytest.approx(ge("psum_out"), abs=0.01)
    assert got["pipeline_registers"] == pytest.approx(
        sum(ge(g) for g in _WS_PIPELINE_GROUPS), abs=0.01)
    # Names play no part: renamed registers keep their declared categories.
    renamed = dict(r, _results={**r["_results"], pe_key: {
        **r["_results"][pe_key],
        "groups": {(g if g.startswith("sub:") else f"r{i}"): v
                   for i, (g, v) in enumerate(groups.items())}}})
    assert attribution.pe_breakdown(renamed, config) == got


def test_int8_pe_has_no_scale_logic(pe_area):
    r = pe_area(format="int8", sparsity=(2, 4))
    assert r["pe_breakdown"]["scale_and_convert"] == 0
    assert not {"BlockConverter", "Float32Adder"} & set(r["modules"])
    assert r["pe_breakdown"]["multipliers"] > 0 and r["pe_breakdown"]["accumulators"] > 0
    assert _pe_total(r) < _pe_total(pe_area(format="mxfp8_e4m3", sparsity=(2, 4)))


def test_array_area_grows_linearly_in_pes(cache):
    kw = dict(format="int8", sparsity=(2, 4))
    area = {}
    for rows, cols in ((1, 1), (1, 2), (2, 2), (2, 3)):
        r = estimate.estimate_area(_cfg(rows=rows, cols=cols, **kw), top="array", cache=cache)
        types = r["types"]
        # One PE module, referenced rows * cols times (as the generator emits it).
        assert types["PE"]["count"] == rows * cols and types["PE"]["variants"] == 1
        assert types["Multiplier"]["count"] == 2 * rows * cols
        area[rows * cols] = r["logic_ge"]
    per_pe = [area[n] / n for n in sorted(area)]
    assert max(per_pe) / min(per_pe) < 1.15, per_pe
    # Adding PEs adds about one PE's area each.
    assert (area[6] - area[4]) / 2 == pytest.approx((area[4] - area[2]) / 2, rel=0.15)


def test_array_breakdown_adds_the_weight_index_registers(cache, pe_area):
    cfg = Config(rows=2, cols=2, sparsity=(2, 4))
    r = estimate.estimate_area(cfg, top="array", cache=cache)
    alone = pe_area(sparsity=(2, 4))["pe_breakdown"]
    # In the array the PE also carries its share of the links: the weight links'
    # index bits are sparse-select metadata registers.
    assert r["pe_breakdown"]["sparse_select"] > alone["sparse_select"]
    assert r["pe_breakdown"]["pipeline_registers"] > alone["pipeline_registers"]
    assert r["pe_breakdown"]["multipliers"] == pytest.approx(alone["multipliers"], rel=0.02)


def test_engine_buffers_are_measured_not_declared(cache):
    cfg = Config(rows=1, cols=2, a_format="mxint2", w_format="mxint2", sparsity=(1, 1),
                 m_max=2, k_max=1024, n_max=4)
    r = estimate.estimate_area(cfg, top="engine", cache=cache)
    from hw.engine import host_buffers
    declared = sum(b * depth * width for b, depth, width in host_buffers(cfg).values())
    assert r["buffer_bits"] == declared > 0
    assert r["types"]["PE"]["count"] == 2 and r["types"]["Engine"]["count"] == 1
    # Buffers are priced by bank (synth.memory); the old flat figure is reported beside.
    assert r["buffer_ge_flat"] == pytest.approx(declared * area.SRAM_GE_PER_BIT)
    assert r["total_ge"] == pytest.approx(r["logic_ge"] + r["buffer_ge"])
    assert sum(b["bits"] for b in r["buffers"].values()) == declared
    # The buffers are not in the logic: the engine's own area is far below what the
    # buffer bits would cost as flip-flops.
    engine = r["modules"]["Engine"]
    assert engine["memory_bits"] == declared
    assert engine["ge"] < declared * Liberty.read().area["DFF"] / 4


# -- cache -----------------------------------------------------------------------------------

def test_repeat_run_hits_the_cache_without_yosys(tmp_path, monkeypatch):
    cfg = _cfg(format="int8", sparsity=(2, 4))
    first = estimate.estimate_area(cfg, top="pe", cache=tmp_path)
    assert first["yosys_runs"] == first["synthesized"] > 0 and first["yosys_seconds"] > 0

    def no_yosys(*args, **kwargs):
        raise AssertionError("Yosys ran on a cache hit")
    monkeypatch.setattr(yosys, "run_yosys", no_yosys)
    # No Yosys run (no_yosys) is the cache's proof; its speed is not asserted here.
    again = estimate.estimate_area(cfg, top="pe", cache=tmp_path)
    assert again["yosys_runs"] == 0 and again["yosys_seconds"] == 0
    for k in ("total_ge", "logic_ge", "transistors", "modules", "pe_breakdown"):
        assert again[k] == first[k]


def test_overlapping_design_synthesizes_only_new_modules(tmp_path):
    cfg = _cfg(format="int8", sparsity=(2, 4), rows=1, cols=2)
    pe = estimate.estimate_area(cfg, top="pe", cache=tmp_path)
    arr = estimate.estimate_area(cfg, top="array", cache=tmp_path)
    # The array refers to the very PE module synthesized for --top pe: only the array
    # and its (empty) PEInstance wrappers are new.
    new = [m for m in arr["modules"].values() if m["class"] in ("Array", "PEInstance")]
    assert 0 < arr["synthesized"] == len(new) < len(arr["modules"])
    assert pe["modules"]["PE"]["key"] == arr["modules"]["PE"]["key"]
    assert arr["modules"]["PE"]["ge_hier"] == pe["modules"]["PE"]["ge_hier"]
    assert pe["modules"]["Multiplier"]["key"] == arr["modules"]["Multiplier"]["key"]
    assert arr["modules"]["Multiplier"]["ge"] == pe["modules"]["Multiplier"]["ge"]


def test_module_area_does_not_depend_on_cache_history(tmp_path):
    """A module's GE is a function of its hash alone: synthesized inside a larger design
    with a cold cache, or alone, it reports the same area."""
    cfg = _cfg(format="mxfp4_e2m1", sparsity=(2, 4), rows=1, cols=2)
    in_array = estimate.estimate_area(cfg, top="array", cache=tmp_path / "a")
    alone = estimate.estimate_area(cfg, top="pe", cache=tmp_path / "b")
    for cls in ("PE", "Multiplier", "BlockConverter", "Float32Adder", "SparseSelect"):
        assert in_array["modules"][cls]["key"] == alone["modules"][cls]["key"]
        assert in_array["modules"][cls]["ge"] == alone["modules"][cls]["ge"], cls


def test_cache_follows_nmmx_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NMMX_CACHE_DIR", str(tmp_path / "c"))
    assert area.cache_dir() == tmp_path / "c"
    area.synthesize(_Mul(4), name="mul")
    assert list((tmp_path / "c").glob("*/*.json"))


# -- errors and the command line --------------------------------------------------------------

def test_estimate_area_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"^top must be one of pe, array, engine, soc, not 'core'$"):
        estimate.estimate_area(Config(), top="core")
    with pytest.raises(TypeError, match=r"^config must be a golden\.Config, not \{\}$"):
        estimate.estimate_area({}, top="pe")
    with pytest.raises(ValueError, match=r"^Yosys executable '/no/such/yosys' does not exist$"):
        estimate.estimate_area(Config(), top="pe", yosys="/no/such/yosys")


@pytest.mark.parametrize("argv, message", [
    (["--rows", "0"], r"^error: rows must be between 1 and 64, not 0$"),
    (["--top", "core"], r"^error: argument --top: invalid choice"),
    (["--yosys", "/no/such/yosys"], r"^error: Yosys executable '/no/such/yosys' does not exist$"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "area.json"
    assert cli.run_cli(cli.main, argv + ["--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.match(message, err), err
    assert not out.exists()


def test_cli_json_report(cache, pe_area, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NMMX_CACHE_DIR", str(cache))
    pe_area(format="int8", sparsity=(2, 4))          # make sure it is cached
    out = tmp_path / "area.json"
    assert cli.run_cli(cli.main, ["--top", "pe", "--format", "int8", "--sparsity", "2:4",
                                  "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PE" in text and "Multiplier" in text and "GE total" in text
    r = json.loads(out.read_text())
    for k in ("total_ge", "logic_ge", "buffer_bits", "buffer_ge", "transistors", "modules",
              "pe_breakdown", "yosys_seconds", "config"):
        assert k in r
    assert r["config"]["a_format"] == "int8" and r["config"]["sparsity"] == "2:4"
    assert all({"count", "ge"} <= set(m) for m in r["modules"].values())
    assert r["yosys_seconds"] == 0


@pytest.mark.slow
def test_engine_8x8(tmp_path):
    # Cold and cached wall times are figures of the report (``yosys_seconds``, printed
    # by ``python -m synth``), not timed assertions.
    r = estimate.estimate_area(Config(), top="engine", cache=tmp_path)
    assert r["types"]["PE"]["count"] == 64
    assert r["buffer_bits"] > 0 and r["total_ge"] > r["logic_ge"] > 0 and r["yosys_seconds"] > 0
    again = estimate.estimate_area(Config(), top="engine", cache=tmp_path)
    assert again["total_ge"] == r["total_ge"] and again["yosys_seconds"] == 0
