"""The buffer memory model (synth.memory), its CACTI table, and the access-count model."""

import json
import re

import pytest

from golden import Config
from synth import memory
from synth.__main__ import format_buffers
from synth.area import SRAM_GE_PER_BIT
from synth.liberty import Liberty


@pytest.fixture(scope="module")
def model():
    return memory.load_model()


def test_reproduces_cacti_points_within_10_percent(model):
    """Every committed CACTI point (area, read and write energy) within 10%."""
    table = json.loads(memory.DATA_PATH.read_text())
    assert table["node_nm"] == memory.NODE_NM and table["nand2_um2"] == memory.NAND2_UM2
    points = table["points"]
    assert {p["ports"] for p in points} == set(memory.PORT_SETS) and len(points) >= 90
    for p in points:
        bits, width, ports = p["bits"], p["width"], p["ports"]
        area_ge = p["area_mm2"] * 1e6 / memory.NAND2_UM2
        assert model.sram_ge(bits, width, ports) == pytest.approx(area_ge, rel=0.10), p
        assert model.read_pj(bits, width, ports) == pytest.approx(p["read_nj"] * 1e3, rel=0.10), p
        assert model.write_pj(bits, width, ports) == pytest.approx(p["write_nj"] * 1e3, rel=0.10), p


def test_interpolation_between_grid_points(model):
    """Off-grid shapes land between their grid neighbours; bigger banks are denser."""
    lo, hi = model.sram_ge(16384, 16), model.sram_ge(16384, 32)
    assert lo < model.sram_ge(16384, 20) < hi
    assert model.sram_ge(8192, 32) < model.sram_ge(12288, 32) < model.sram_ge(16384, 32)
    per_bit = [model.sram_ge(b, 32) / b for b in (2048, 16384, 131072)]
    assert per_bit[0] > per_bit[1] > per_bit[2]
    # The two-port cell is larger than the single-port one.
    assert model.sram_ge(16384, 32, "1r1w") > model.sram_ge(16384, 32, "1rw")
    # Below the smallest macro of a width the periphery is a floor.
    assert model.sram_ge(64, 8) == pytest.approx(model.sram_ge(512, 8))


def test_flip_flops_below_the_crossover(model):
    lib = Liberty.read()
    dff, mux = lib.area["DFF"], lib.area["MUX2"]
    assert model.ff_ge(1, 8) == pytest.approx(8 * (dff + mux) + 8 * dff)
    for width in (8, 20, 32):
        t = model.ff_threshold_bits(width)
        assert 0 < t < 4096 and t % width == 0
        depth = t // width
        assert model.bank(depth, width)["kind"] == "ff"
        assert model.bank(depth + 1, width)["kind"] == "sram"
        assert model.bank(depth, width)["ge"] == pytest.approx(model.ff_ge(depth, width))


def test_bad_bank_and_port_set(model):
    with pytest.raises(ValueError, match=r"^The memory model has no port set '2rw'; it has "
                                         r"1r1w, 1rw$"):
        model.sram_ge(1024, 8, "2rw")
    with pytest.raises(ValueError, match=r"^A memory bank needs width >= 1 and bits >= "
                                         r"width, not 4 bits of width 8$"):
        model.sram_ge(4, 8)


def test_buffer_report_uses_the_config_geometry(model):
    cfg = Config()
    rep = memory.buffer_report(cfg.host_buffers, SRAM_GE_PER_BIT)
    assert list(rep["buffers"]) == list(cfg.host_buffers)
    for name, (banks, depth, width) in cfg.host_buffers.items():
        b = rep["buffers"][name]
        assert (b["banks"], b["depth"], b["width"]) == (banks, depth, width)
        assert b["ge"] == pytest.approx(banks * model.bank(depth, width)["ge"], abs=0.05)
        assert b["ge_flat"] == pytest.approx(banks * depth * width * SRAM_GE_PER_BIT)
        assert b["read_pj"] == pytest.approx(model.read_pj(depth * width, width), abs=1e-4)
    assert rep["buffer_ge"] == pytest.approx(sum(b["ge"] for b in rep["buffers"].values()))
    assert rep["buffer_ge_flat"] == pytest.approx(cfg.host_buffer_bits * SRAM_GE_PER_BIT)
    assert rep["buffer_model"]["name"] == memory.MODEL_NAME
    lines = format_buffers({"buffer_bits": cfg.host_buffer_bits, **rep})
    assert re.match(r"^  a_data +8 +2048 +32 sram ", lines[2])
    assert lines[-1] == (f"buffers: {cfg.host_buffer_bits} bits = {rep['buffer_ge']:.1f} GE "
                         f"(flat {rep['buffer_ge_flat']:.1f} GE)")


# -- access counts: hand-checked --------------------------------------------------------------

SMALL = dict(rows=2, cols=2, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(2, 4),
             block_size=32, m_max=8, k_max=64, n_max=8)


def test_access_counts_os_by_hand():
    # M x K x N = 3 x 40 x 5: K pads to 64 (2 blocks), G = 64/4 = 16 groups, tiles
    # 2 x 3 = 6, Nt = 3.
    acc = Config(**SMALL).schedule.buffer_accesses(3, 40, 5)
    assert acc == {
        "a_data": {"reads": 6 * 16 * 2, "writes": 3 * 16},
        "w_data": {"reads": 6 * 16 * 2, "writes": 5 * 16},
        "a_scale": {"reads": 6 * 2 * 2, "writes": 3 * 2},
        "w_scale": {"reads": 6 * 2 * 2, "writes": 5 * 2},
        "c": {"reads": 3 * 3 * 2, "writes": 15},
    }


def test_access_counts_ws_by_hand():
    cfg = Config(**SMALL, dataflow="ws")
    assert cfg.ws_fold_groups == 2          # 8 groups per block do not fit 2 rows
    # 16 groups in folds of 2: 8 folds x 3 column tiles = 24 passes.
    acc = cfg.schedule.buffer_accesses(3, 40, 5)
    assert acc == {
        "a_data": {"reads": 3 * 3 * 16, "writes": 3 * 16},
        "w_data": {"reads": 3 * 2 * 16, "writes": 5 * 16},
        "a_scale": {"reads": 3 * 3 * 2, "writes": 3 * 2},
        "w_scale": {"reads": 3 * 2 * 2, "writes": 5 * 2},
        "c": {"reads": 3 * 3 * 2, "writes": 15},
        "acc": {"reads": (24 - 3) * 3 * 2, "writes": 24 * 3 * 2},
    }


def test_access_counts_int8_have_no_scales():
    cfg = Config(rows=2, cols=2, a_format="int8", w_format="int8", sparsity=(2, 4),
                 m_max=8, k_max=64, n_max=8)
    acc = cfg.schedule.buffer_accesses(2, 8, 2)      # G = 2, one tile
    assert acc == {"a_data": {"reads": 4, "writes": 4}, "w_data": {"reads": 4, "writes": 4},
                   "c": {"reads": 4, "writes": 4}}


def test_gemm_energy_prices_each_access(model):
    """Energy per GEMM: each buffer's reads and writes at its bank's energies per word;
    the accesses must name exactly the engine's buffers."""
    cfg = Config(**SMALL, dataflow="ws")
    from hw.registry import hardware
    buffers = hardware(cfg).engine.buffers_of(cfg)
    acc = cfg.schedule.buffer_accesses(3, 40, 5)
    e = memory.gemm_energy(buffers, acc, model)
    assert (e["model"], e["node_nm"], e["ports"]) == ("cacti7-45nm", 45, "1r1w")
    total = 0.0
    for name, (_banks, depth, width) in buffers.items():
        b = model.bank(depth, width)
        want = acc[name]["reads"] * b["read_pj"] + acc[name]["writes"] * b["write_pj"]
        assert e["buffers"][name]["pj"] == pytest.approx(want, abs=1e-3), name
        total += want
    assert e["pj"] == pytest.approx(total, abs=1e-2) and e["pj"] > 0
    # Twice the accesses, twice the energy.
    double = {n: {k: 2 * v for k, v in a.items()} for n, a in acc.items()}
    assert memory.gemm_energy(buffers, double, model)["pj"] == pytest.approx(2 * e["pj"],
                                                                             abs=1e-2)
    del acc["acc"]
    with pytest.raises(ValueError, match=r"^The accesses name buffers \['a_data', 'a_scale', "
                                         r"'c', 'w_data', 'w_scale'\], but the engine has "
                                         r"\['a_data', 'a_scale', 'acc', 'c', 'w_data', "
                                         r"'w_scale'\]$"):
        memory.gemm_energy(buffers, acc, model)
