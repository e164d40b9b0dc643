"""The AXI wrapper (issue #17): register map, generator outputs, C header, and the
cocotbext-axi regressions on Verilator (one 2x2 build in the default suite)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from gen.__main__ import main as gen_main
from nmmx.flags import run_cli
from gen.generate import generate
from golden import Config
from golden.gemm import encode_operands
from golden.pack import pack_operands, stream_words, unpack_c_stream, WR_SEL
from golden import counters as counter_table
from golden.regmap import (ACCESSES, MAP_REVISION, addr_bits, load_cycles, register,
                           register_map, result_words, soc_cycles, streams)
from hw.lint import lint_verilog
from sim.stimulus import make_operands

SMALL = Config(rows=2, cols=2, m_max=8, k_max=64, n_max=8)


def test_register_map_is_consistent():
    for cfg in (SMALL, Config(a_format="int8", w_format="int8", sparsity=(1, 4))):
        regs = register_map(cfg)
        offsets = [r.offset for r in regs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        for r in regs:
            assert r.access in ACCESSES and r.offset % 4 == 0
            masks = [f.mask for f in r.fields]
            assert sum(masks) == r.mask and all(m < 1 << 32 for m in masks)
            assert all(a & b == 0 for i, a in enumerate(masks) for b in masks[i + 1:])
        geo = register(regs, "GEOMETRY")
        assert geo.reset == cfg.rows | cfg.cols << 8 | cfg.n_keep << 16 | cfg.m_group << 24
        assert register(regs, "K_MAX").reset == cfg.k_max
        status = register(regs, "STATUS")
        sinks = [s.name for s in streams(cfg) if s.direction == "in"]
        assert [f.name for f in status.fields][3:] == [f"{s.upper()}_LOADED" for s in sinks]
    assert len(streams(SMALL)) == 5 and len(streams(Config(a_format="int8",
                                                           w_format="int8"))) == 3


@pytest.mark.parametrize("cfg", [SMALL, Config(dataflow="ws", a_format="int8",
                                                w_format="int8", sparsity=(1, 4)),
                                 Config(dataflow="ws")], ids=lambda c: c.name)
def test_counter_registers_follow_the_counter_list(cfg):
    """Every engine counter (golden.counters.names) is one LO/HI pair; the run counters
    and GEMMS/BAD_ACCESS keep their revision-1 offsets, the buffer-access counters follow
    from 0xC0, and the map still fits 8 address bits."""
    regs = register_map(cfg)
    pairs = [r.name[:-3] for r in regs if r.name.endswith("_LO")]
    assert pairs == [counter_table.register_stem(n) for n in counter_table.names(cfg)]
    assert [register(regs, f"{s}_LO").offset for s in ("CYCLES", "ISSUED", "STALL", "TILES")] \
        == [0x80, 0x88, 0x90, 0x98]
    assert (register(regs, "GEMMS").offset, register(regs, "BAD_ACCESS").offset) == (0xA0,
                                                                                    0xA4)
    access = counter_table.access_names(cfg)
    for i, name in enumerate(access):
        stem = counter_table.register_stem(name)
        lo, hi = register(regs, f"{stem}_LO"), register(regs, f"{stem}_HI")
        assert (lo.offset, hi.offset, hi.capture) == (0xC0 + 8 * i, 0xC4 + 8 * i, lo.name)
        assert lo.doc.startswith(f"engine counter {name} (")
    assert addr_bits(regs) == 8
    assert register(regs, "VERSION").field("MAP").reset == MAP_REVISION == 2


def test_register_map_errors():
    with pytest.raises(TypeError, match=r"^register_map needs a golden\.Config, not 3$"):
        register_map(3)
    with pytest.raises(ValueError, match=r"^version must be three whole numbers in "
                                         r"0\.\.255, not \(1, 2\)$"):
        register_map(SMALL, (1, 2))


def test_stream_words_are_the_buffer_writes():
    enc = make_operands(SMALL, 3, 40, 5, "gaussian", 1)
    words = stream_words(SMALL, enc)
    writes = pack_operands(SMALL, enc)
    for s in streams(SMALL):
        if s.direction == "in":
            sel = writes.sel == WR_SEL[s.buffer]
            assert [int(w) for w in words[s.name]] == [int(w) for w in writes.data[sel]]
    assert sum(len(w) for w in words.values()) == load_cycles(SMALL, 3, 40, 5) == len(writes)
    c = np.arange(3 * 4, dtype=np.uint64).reshape(3, 4)
    packed = [int(c[i, 2 * t]) | int(c[i, 2 * t + 1]) << 32 for i in range(3) for t in range(2)]
    assert len(packed) == result_words(SMALL, 3, 4)
    np.testing.assert_array_equal(unpack_c_stream(SMALL, packed, 3, 4).view(np.uint32), c)
    with pytest.raises(ValueError, match=r"^C stream lanes beyond n=3 are not zero$"):
        unpack_c_stream(SMALL, packed, 3, 3)
    with pytest.raises(ValueError, match=r"^unpack_c_stream needs 6 C words for 3x4, "
                                         r"not 5$"):
        unpack_c_stream(SMALL, packed[:5], 3, 4)


@pytest.fixture(scope="module")
def axi_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("axi")
    return generate(SMALL, out, bus="axi")


def test_gen_axi_writes_four_files_lint_clean(axi_files):
    v, j, h, md = axi_files
    assert [p.name for p in axi_files] == [f"{SMALL.name}_axi{s}" for s in
                                           (".v", ".json", ".h", "_regs.md")]
    info = json.loads(j.read_text())
    assert info["bus"] == "axi" and info["top"] == f"{SMALL.name}_axi"
    names = {p["name"] for p in info["ports"]}
    for s in info["streams"]:
        assert {f"{s['prefix']}_{x}" for x in ("tdata", "tvalid", "tready", "tlast")} <= names
    assert {"s_axil_awaddr", "s_axil_rdata", "irq", "clk", "rst"} <= names
    assert [r["name"] for r in info["regmap"]["registers"]] == \
        [r.name for r in register_map(SMALL, (0, 1, 0))]
    table = md.read_text()
    for r in info["regmap"]["registers"]:
        assert f"| `{r['name']}` |" in table
    ok, text = lint_verilog(v, info["top"])
    assert ok, text


def test_gen_cli_bus_flag(tmp_path, capsys):
    assert run_cli(gen_main, ["--rows", "1", "--cols", "1", "--m-max", "2", "--k-max",
                              "32", "--n-max", "2", "--bus", "axi", "-o",
                              str(tmp_path)]) == 0
    assert len(list(tmp_path.iterdir())) == 4
    assert run_cli(gen_main, ["--bus", "pci", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: argument --bus: invalid choice: 'pci' \(choose from "
                     r"'?none'?, '?axi'?\)$", err, re.M), err
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_header_compiles_and_matches_manifest(axi_files, tmp_path):
    v, j, h, md = axi_files
    info = json.loads(j.read_text())
    prefix = re.sub(r"[^A-Za-z0-9]", "_", info["top"]).upper()
    lines = []
    for r in info["regmap"]["registers"]:
        rp = f"{prefix}_{r['name']}"
        lines.append(f'    printf("{r["name"]} %u %u\\n", (unsigned){rp}_OFFSET, '
                     f'(unsigned){rp}_RESET);')
        for f in r["fields"]:
            fp = f"{rp}_{f['name']}"
            lines.append(f'    printf("{r["name"]}.{f["name"]} %u %u %u\\n", '
                         f'(unsigned){fp}_SHIFT, (unsigned){fp}_MASK, (unsigned){fp}_RESET);')
    src = tmp_path / "regs.c"
    src.write_text(f'#include <stdio.h>\n#include "{h.name}"\n#include "{h.name}"\n'
                   "int main(void) {\n" + "\n".join(lines) + "\n    return 0;\n}\n")
    exe = tmp_path / "regs"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-I", str(h.parent), str(src),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    want = []
    for r in info["regmap"]["registers"]:
        want.append(f"{r['name']} {r['offset']} {r['reset']}")
        want += [f"{r['name']}.{f['name']} {f['lsb']} {f['mask']} {f['reset']}"
                 for f in r["fields"]]
    assert out.splitlines() == want


def test_soc_regressions():
    """Every cocotb test of sim.tb_axi on a 2x2 MX engine: registers, back-to-back GEMMs
    (a partial tile, a full buffer, 1x1x1) under random backpressure, the bus cycle
    model, every bad access."""
    from sim.tb_axi import SocCase, run_soc
    cases = [SocCase(3, 40, 5, seed=1), SocCase(8, 64, 8, data="heavy", seed=2),
             SocCase(1, 1, 1, seed=3)]
    ok, results, run_dir = run_soc(SMALL, cases, seed=7)
    assert ok, f"see {run_dir}/sim.log: {results}"
    assert results["soc_gemms"]["mismatches"].tolist() == [0, 0, 0]
    timing = results["soc_timing"]
    assert timing["load"].tolist() == [load_cycles(SMALL, c.m, c.k, c.n) for c in cases]
    assert timing["soc"].tolist() == [soc_cycles(SMALL, c.m, c.k, c.n) for c in cases]
    assert timing["engine"].tolist() == [SMALL.schedule.cycles(c.m, c.k, c.n) for c in cases]


def test_soc_regression_with_tile_skip():
    """Behind the wrapper an engine with ``tile_skip`` skips the all-zero weight tiles of
    each GEMM: C equals golden.skip's result and START..C the bus model given the mask."""
    from dataclasses import replace

    from golden.skip import weight_tile_mask
    from sim.stimulus import make_operands
    from sim.tb_axi import SocCase, run_soc
    cfg = replace(SMALL, tile_skip=True)
    cases = [SocCase(4, 64, 8, data="zerotiles50", seed=4), SocCase(3, 40, 5, seed=1)]
    masks = [tuple(bool(s) for s in weight_tile_mask(
        cfg, make_operands(cfg, c.m, c.k, c.n, c.data, c.seed))) for c in cases]
    assert any(masks[0]) and not all(masks[0])
    ok, results, run_dir = run_soc(cfg, cases, seed=7)
    assert ok, f"see {run_dir}/sim.log: {results}"
    assert results["soc_gemms"]["mismatches"].tolist() == [0, 0]
    timing = results["soc_timing"]
    assert timing["soc"].tolist() == [soc_cycles(cfg, c.m, c.k, c.n, s)
                                      for c, s in zip(cases, masks)]
    assert timing["engine"].tolist() == [cfg.schedule.cycles(c.m, c.k, c.n, s)
                                         for c, s in zip(cases, masks)]
    assert timing["engine"][0] < SMALL.schedule.cycles(4, 64, 8)
