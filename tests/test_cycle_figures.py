"""``config.schedule.scalesim_cycles`` against the real SCALE-Sim.

The table below is SCALE-Sim 2.0.2's total cycles (GEMM mode, SRAMs that never stall)
for ten GEMM shapes on three arrays in both dataflows, produced by
``tools/scalesim_table.py`` in a separate venv; SCALE-Sim itself is not needed here.
nmmx feeds SCALE-Sim the GEMM with K counted in sparsity groups, so a dense config
meets the table with the same K and an N:M config with K = m_group * Kg (or anything
that rounds up to it); MX block padding never enters.
"""

from dataclasses import replace

import pytest

from golden import Config

#: SCALE-Sim 2.0.2 total cycles, keyed by (dataflow, rows, cols).
SCALESIM = {
    # os 4x4: (M, K, N, total cycles)
    ('os', 4, 4): [(7, 200, 5, 823), (8, 64, 8, 279), (1, 1, 1, 6), (16, 32, 16, 607), (9, 17, 3, 68), (3, 5, 20, 54), (12, 100, 1, 317), (1, 300, 9, 917), (33, 7, 13, 467), (4, 8, 4, 13)],
    # os 8x8: (M, K, N, total cycles)
    ('os', 8, 8): [(7, 200, 5, 213), (8, 64, 8, 77), (1, 1, 1, 14), (16, 32, 16, 183), (9, 17, 3, 61), (3, 5, 20, 56), (12, 100, 1, 227), (1, 300, 9, 627), (33, 7, 13, 209), (4, 8, 4, 21)],
    # os 3x5: (M, K, N, total cycles)
    ('os', 3, 5): [(7, 200, 5, 617), (8, 64, 8, 419), (1, 1, 1, 6), (16, 32, 16, 911), (9, 17, 3, 68), (3, 5, 20, 43), (12, 100, 1, 423), (1, 300, 9, 611), (33, 7, 13, 428), (4, 8, 4, 27)],
    # ws 4x4: (M, K, N, total cycles)
    ('ws', 4, 4): [(7, 200, 5, 1699), (8, 64, 8, 575), (1, 1, 1, 10), (16, 32, 16, 831), (9, 17, 3, 94), (3, 5, 20, 129), (12, 100, 1, 549), (1, 300, 9, 2474), (33, 7, 13, 343), (4, 8, 4, 27)],
    # ws 8x8: (M, K, N, total cycles)
    ('ws', 8, 8): [(7, 200, 5, 724), (8, 64, 8, 239), (1, 1, 1, 22), (16, 32, 16, 303), (9, 17, 3, 92), (3, 5, 20, 74), (12, 100, 1, 441), (1, 300, 9, 1747), (33, 7, 13, 109), (4, 8, 4, 25)],
    # ws 3x5: (M, K, N, total cycles)
    ('ws', 3, 5): [(7, 200, 5, 1071), (8, 64, 8, 747), (1, 1, 1, 9), (16, 32, 16, 1099), (9, 17, 3, 107), (3, 5, 20, 95), (12, 100, 1, 713), (1, 300, 9, 1999), (33, 7, 13, 377), (4, 8, 4, 38)],
}

CASES = [(df, r, c, *shape) for (df, r, c), shapes in SCALESIM.items() for shape in shapes]


def _config(df, rows, cols, a_format, sparsity, block_size, k_max):
    return Config(rows=rows, cols=cols, dataflow=df, a_format=a_format, w_format=a_format,
                  sparsity=sparsity, block_size=block_size, m_max=64, k_max=k_max,
                  n_max=64)


def test_table_covers_both_dataflows_and_non_multiples():
    assert {df for df, *_ in CASES} == {"os", "ws"} and len(CASES) >= 2 * 2 * 8
    assert any(m % r or n % c or k % r for _, r, c, m, k, n, _ in CASES)
    assert len({(r, c) for _, r, c, *_ in CASES}) >= 2


@pytest.mark.parametrize("df,rows,cols,m,k,n,want", CASES)
def test_dense_matches_scalesim(df, rows, cols, m, k, n, want):
    for fmt in ("mxfp8_e4m3", "int8"):
        # block_size 32 for MX: K is not padded to the block for SCALE-Sim.
        config = _config(df, rows, cols, fmt, (1, 1), 32, 512)
        assert config.schedule.scalesim_cycles(m, k, n) == want, (config.name, m, k, n)


@pytest.mark.parametrize("df,rows,cols,m,k,n,want", CASES)
def test_sparse_counts_k_in_groups(df, rows, cols, m, k, n, want):
    # 2:4: Kg = ceil(K/4) groups; the engine K 4*Kg - 3 rounds up to the same Kg.
    config = _config(df, rows, cols, "mxfp4_e2m1", (2, 4), 32, 2048)
    assert config.schedule.scalesim_cycles(m, 4 * k, n) == want
    assert config.schedule.scalesim_cycles(m, 4 * k - 3, n) == want
    int8 = replace(config, a_format="int8", w_format="int8")
    assert int8.schedule.scalesim_cycles(m, 4 * k - 3, n) == want


# -- int8 has no blocks: K is padded to whole sparsity groups only -------------------------

def test_int8_pads_k_to_the_group_only():
    dense = Config(rows=4, cols=4, a_format="int8", w_format="int8", sparsity=(1, 1))
    assert dense.block_size == 1 and dense.padded_k(200) == 200 and dense.groups(200) == 200
    one = replace(dense, block_size=1)
    # 1 issue + (2*2 - 1) tiles x 200 + 199 + 1 read + 3 + pe_latency + 7 drain.
    assert dense.schedule.cycles(7, 200, 5) == one.schedule.cycles(7, 200, 5) == \
        811 + dense.pe_latency
    sparse = Config(rows=4, cols=4, a_format="int8", w_format="int8", sparsity=(2, 4),
                    block_size=64, k_max=1022)
    # Any block_size describes the same engine: the config stores the group.
    assert sparse == replace(sparse, block_size=4) and sparse.block_size == 4
    assert sparse.padded_k(199) == 200 and sparse.kp_max == 1024
    assert sparse.a_data_depth == sparse.m_tiles_max * 1024 // 4
    # MX keeps its blocks.
    mx = replace(sparse, a_format="mxint8", w_format="mxint8", block_size=32)
    assert mx.block_size == 32 and mx.padded_k(199) == 224


def test_int8_block_size_is_still_checked():
    with pytest.raises(TypeError, match=r"^block_size must be a whole number, not 'x'$"):
        Config(a_format="int8", w_format="int8", block_size="x")
    with pytest.raises(ValueError, match=r"^block_size must be at least 1, not 0$"):
        Config(a_format="int8", w_format="int8", block_size=0)


# -- utilization: issued slots and useful MACs ---------------------------------------------

def test_useful_utilization_excludes_padding():
    c = Config(rows=8, cols=8, sparsity=(2, 4), block_size=32, m_max=16, k_max=256,
               n_max=16)
    cyc = c.schedule.cycles(7, 200, 5)
    assert c.schedule.utilization(7, 200, 5) == c.schedule.issued(7, 200, 5) / (8 * 8 * 2 * cyc)
    assert c.schedule.useful_utilization(7, 200, 5) == 7 * 200 * 5 / (8 * 8 * 4 * cyc)
    # K = 200 is padded to 224: the issued slots include 24 padded K positions per row.
    assert c.schedule.issued(7, 200, 5) == 224 // 4 * 2 * 7 * 5
    ratio = c.schedule.useful_utilization(7, 200, 5) / c.schedule.utilization(7, 200, 5)
    assert ratio == pytest.approx(200 / 224)
    # Whole blocks, whole tiles: the two agree.
    assert c.schedule.useful_utilization(16, 256, 16) == pytest.approx(
        c.schedule.utilization(16, 256, 16))


def test_dse_rows_report_both_utilizations():
    from dse.report import _point_table
    from dse.sweep import Settings, evaluate_point

    def area(config, top="engine"):
        return {"total_ge": 2000.0, "logic_ge": 1000.0, "buffer_bits": 10,
                "buffer_ge": 1000.0, "transistors": 4000, "yosys_seconds": 0.0,
                "pe_breakdown": {}, "modules": {}}

    config = Config(rows=4, cols=4, sparsity=(2, 4), block_size=32, m_max=16, k_max=256,
                    n_max=16)
    gemms = ((7, 200, 5), (16, 256, 16))
    row = evaluate_point(config, Settings(gemms=gemms, eval_shape=(4, 32, 4)), area_fn=area)
    cycles = [config.schedule.cycles(*g) for g in gemms]
    assert row["useful_utilization@7x200x5"] == config.schedule.useful_utilization(7, 200, 5)
    assert row["useful_utilization"] == pytest.approx(
        (7 * 200 * 5 + 16 * 256 * 16) / (config.peak_macs_per_cycle * sum(cycles)))
    assert row["useful_utilization"] < row["utilization"] <= 1
    assert "util. useful" in _point_table([{**row, "err_rel_fro": 0.0, "err_sqnr_db": 0.0,
                                            "err_max_abs": 0.0}])
