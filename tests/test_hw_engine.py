"""Amaranth-simulator tests of the PE and of small engines against the golden model.

Python simulation is slow, so every case here is tiny; the Verilator regressions in
``sim/`` cover the large configs.  Expected delays come from ``Config``'s timing model,
never from numbers typed in here.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from dataclasses import replace

from amaranth.hdl import Shape
from amaranth.lib.wiring import Flow

from engine_harness import (Step, c_lanes, check_result, random_encoded, run_engine,
                            run_steps)
from golden import Config
from golden.config import DATAFLOWS
from golden.gemm import encode_operands, gemm_encoded
from golden.pack import WR_SEL, pack_operands, pack_fields, unpack_c
from golden import counters as counter_table
from hw.engine import Engine
from hw.ws import WSEngine
from hw.pe import PE


def test_int8_engine_2x3():
    # m and n are not multiples of R and C; K is not a multiple of the block; the second
    # run has fewer groups than rows (tiles then start R cycles apart).
    config = Config(rows=2, cols=3, a_format="int8", w_format="int8", sparsity=(2, 4),
                    block_size=8, m_max=5, k_max=24, n_max=7)
    rng = np.random.default_rng(1)
    runs = [random_encoded(config, 5, 19, 7, rng), random_encoded(config, 3, 3, 4, rng)]
    for enc, (c, counters) in zip(runs, run_engine(config, runs)):
        assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


def test_mxfp4_engine_2x2_sparse():
    config = Config(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                    sparsity=(2, 4), block_size=8, m_max=3, k_max=16, n_max=4)
    rng = np.random.default_rng(2)
    runs = [random_encoded(config, 3, 13, 4, rng), random_encoded(config, 2, 16, 3, rng)]
    for enc, (c, counters) in zip(runs, run_engine(config, runs)):
        assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


def test_mxfp8_engine_specials_block_equals_group():
    # block_size == M: a block ends every cycle; E5M2 has Inf and NaN codes and the
    # scales span the whole E8M0 range (including the NaN scale).
    config = Config(rows=2, cols=1, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2",
                    sparsity=(1, 2), block_size=2, m_max=2, k_max=8, n_max=2)
    rng = np.random.default_rng(3)
    runs = [random_encoded(config, 2, 8, 2, rng, specials=True)]
    for enc, (c, counters) in zip(runs, run_engine(config, runs)):
        assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


def test_engine_from_float_operands_1x1_dense():
    config = Config(rows=1, cols=1, a_format="mxint8", w_format="mxfp6_e3m2",
                    sparsity=(2, 2), block_size=4, m_max=2, k_max=8, n_max=2)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 7)).astype(np.float32)
    w = rng.standard_normal((7, 2)).astype(np.float32)
    enc = encode_operands(a, w, config)
    (c, counters), = run_engine(config, [enc])
    assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


def test_pe_latency_and_blocks():
    """The bare PE: two tiles back to back, results after ``pe_latency`` cycles."""
    config = Config(rows=1, cols=1, a_format="mxfp6_e2m3", w_format="mxint4",
                    sparsity=(1, 4), block_size=8, m_max=1, k_max=16, n_max=1)
    rng = np.random.default_rng(5)
    encs = [random_encoded(config, 1, 16, 1, rng) for _ in range(2)]
    gpb, M, a_bits = config.groups_per_block, config.m_group, config.a_fmt.bits
    dut = PE(config)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        cycle = 0
        for enc in encs:
            groups = enc.w_values.shape[0]
            for g in range(groups):
                group = enc.a_codes[0, g * M:(g + 1) * M]
                ctx.set(dut.a.as_value(), int(pack_fields(group, a_bits)))
                ctx.set(dut.w.as_value(), int(enc.w_values[g, 0, 0])
                        | int(enc.w_indices[g, 0, 0]) << config.w_fmt.bits)
                ctx.set(dut.a_scale, int(enc.a_scales[0, g // gpb]))
                ctx.set(dut.w_scale, int(enc.w_scales[g // gpb, 0]))
                ctx.set(dut.ctl, {"valid": 1, "tfirst": g == 0, "bfirst": g % gpb == 0,
                                  "blast": g % gpb == gpb - 1, "tlast": g == groups - 1})
                await ctx.tick()
                cycle += 1
                if ctx.get(dut.result_valid):
                    seen.append((cycle, ctx.get(dut.result)))
        ctx.set(dut.ctl, {"valid": 0, "tfirst": 0, "bfirst": 0, "blast": 0, "tlast": 0})
        for _ in range(config.pe_latency + 2):
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.result_valid):
                seen.append((cycle, ctx.get(dut.result)))

    sim.add_testbench(bench)
    sim.run()
    groups = encs[0].w_values.shape[0]
    # Tile t's last group is on the inputs in cycle t*groups + groups - 1 (counting from 0,
    # i.e. the value of ``cycle`` after that many ticks); result_valid is high
    # pe_latency cycles later.
    want_cycles = [t * groups + groups - 1 + config.pe_latency for t in range(2)]
    assert [cyc for cyc, _ in seen] == want_cycles
    for (_, bits), enc in zip(seen, encs):
        want = gemm_encoded(enc, config)
        assert bits == int(want.view(np.uint32)[0, 0])


def test_mxfp8_engine_forced_specials():
    """Inf * 0, +Inf, -Inf, Inf - Inf across blocks, NaN codes and NaN scales."""
    config = Config(rows=2, cols=2, a_format="mxfp8_e5m2", w_format="mxfp8_e5m2",
                    sparsity=(2, 4), block_size=8, m_max=2, k_max=24, n_max=4)
    rng = np.random.default_rng(6)
    enc = random_encoded(config, 2, 24, 4, rng)
    pinf, ninf, nan, one, zero = 0x7C, 0xFC, 0x7F, 0x3C, 0x00
    for codes in (enc.a_codes, enc.w_values):   # random codes finite, specials placed
        codes[(codes & 0x7C) == 0x7C] = one
    enc.w_indices[:, 0, :] = 0            # slot 0 of every group reads position 0
    enc.a_codes[:, 0::4] = one            # ... which is finite unless set below
    enc.a_codes[0, 0] = pinf              # row 0, block 0: +Inf
    enc.a_codes[1, 0] = ninf              # row 1, block 0: -Inf
    enc.a_codes[1, 8] = pinf              # row 1, block 1: +Inf (Inf - Inf over blocks)
    enc.w_values[2, 0, :] = one           # ... times +1
    enc.w_values[0, 0, :] = [zero, one, one, one]  # column 0: Inf * 0 = NaN
    enc.w_values[4, 0, 2] = nan           # column 2, block 2: NaN weight code
    enc.w_scales[1, 3] = 0xFF             # column 3, block 1: NaN scale
    want = gemm_encoded(enc, config)
    bits = want.view(np.uint32)
    assert np.isnan(want).sum() == 7 and want[0, 1] == np.inf
    assert (bits[np.isnan(want)] == 0x7FC00000).all()
    (c, counters), = run_engine(config, [enc])
    assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


@pytest.mark.parametrize("rows,cols", [(8, 8), (16, 4), (3, 5)])
@pytest.mark.parametrize("sparsity", [(1, 1), (2, 2), (4, 4), (1, 2), (2, 4), (1, 4),
                                      (2, 8), (4, 8), (1, 16)])
def test_model_meets_utilization_and_speedup_targets(rows, cols, sparsity):
    """The cycle model of the engine meets the issue's performance targets."""
    n, mg = sparsity
    config = Config(rows=rows, cols=cols, sparsity=sparsity, block_size=32,
                    m_max=4 * rows, n_max=4 * cols, k_max=max(1024, 4 * (rows + cols) * mg))
    gm, gn = 4 * rows, 4 * cols
    k = 4 * (rows + cols) * mg            # K / m_group == 4 (R + C)
    k = config.padded_k(k)
    assert config.schedule.utilization(gm, k, gn) >= 0.95
    dense = Config(rows=rows, cols=cols, sparsity=(n, n), block_size=32,
                   m_max=gm, n_max=gn, k_max=k)
    speedup = dense.schedule.cycles(gm, k, gn) / config.schedule.cycles(gm, k, gn)
    assert speedup >= 0.95 * mg / n
    # scalesim's estimate is never better than this engine's back-to-back tiles.
    assert config.schedule.cycles(gm, k, gn) <= config.schedule.scalesim_cycles(gm, k, gn)


def test_model_small_k_tiles_wait_for_the_drain():
    config = Config(rows=4, cols=2, sparsity=(2, 4), block_size=4, m_max=8, k_max=64,
                    n_max=4)
    # G = 2 < R = 4: tiles start R cycles apart, and the gap is counted as stall.
    s = config.schedule
    assert config.groups(8) == 2 and s.tile_period(8) == 4 and s.output_tiles(8, 4) == 4
    # 1 (issue) + 3 tiles x 4 + (2 - 1) + 1 (buffer read) + 3 (rows - 1) + the MX PE's
    # latency + 5 (drain R + C - 1) = 23 + pe_latency; one tile (4x8x2) is 11 + it.
    pe = config.pe_latency
    assert s.cycles(8, 8, 4) == 23 + pe and s.cycles(4, 8, 2) == 11 + pe
    # 4 tiles x 2 groups issue, the other busy cycles stall.
    assert s.stall(8, 8, 4) == 15 + pe and s.tiles(8, 8, 4) == 4
    with pytest.raises(ValueError, match=r"^GEMM K=65 does not fit this engine \(k_max=64\)$"):
        config.schedule.cycles(8, 65, 4)


def test_engine_wide_words_1x2():
    # A groups of 16 x 6 = 96 bits: the write stream uses Python ints above 64 bits.
    config = Config(rows=1, cols=2, a_format="mxfp6_e3m2", w_format="mxfp8_e4m3",
                    sparsity=(4, 16), block_size=16, m_max=2, k_max=48, n_max=3)
    rng = np.random.default_rng(7)
    enc = random_encoded(config, 2, 40, 3, rng)
    writes = pack_operands(config, enc)
    assert writes.data.dtype == object and max(writes.data) >= 1 << 64
    (c, counters), = run_engine(config, [enc])
    assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


def test_pack_fields_matches_python_ints():
    rng = np.random.default_rng(8)
    for bits, count in [(6, 16), (12, 16), (4, 4), (8, 8), (10, 7)]:
        fields = rng.integers(0, 1 << bits, (5, count))
        got = pack_fields(fields, bits)
        want = [sum(int(v) << (bits * f) for f, v in enumerate(row)) for row in fields]
        assert [int(x) for x in got] == want
        assert got.dtype == (np.uint64 if bits * count <= 64 else object)


def test_pack_operands_layout_and_errors():
    config = Config(rows=2, cols=2, a_format="mxint4", w_format="mxint4", sparsity=(1, 4),
                    block_size=8, m_max=3, k_max=16, n_max=3)
    rng = np.random.default_rng(9)
    enc = random_encoded(config, 3, 16, 3, rng)
    w = pack_operands(config, enc)
    by_sel = {s: [(b, a, d) for sel, b, a, d in w if sel == s] for s in range(4)}
    # Row 2 lives in bank 0 at tile-row 1: address groups_max + g.
    g = 3
    word = dict(((b, a), d) for b, a, d in by_sel[0])[(0, config.groups_max + g)]
    assert word == int(pack_fields(enc.a_codes[2, 4 * g:4 * g + 4], 4))
    # Column 2's W slot: value in the low 4 bits, its index above.
    word = dict(((b, a), d) for b, a, d in by_sel[2])[(0, config.groups_max + g)]
    assert word == int(enc.w_values[g, 0, 2]) | int(enc.w_indices[g, 0, 2]) << 4
    assert len(by_sel[1]) == 3 * 2 and len(by_sel[3]) == 2 * 3
    with pytest.raises(TypeError, match=r"^pack_operands needs EncodedOperands, not dict$"):
        pack_operands(config, {})
    small = Config(rows=2, cols=2, a_format="mxint4", w_format="mxint4", sparsity=(1, 4),
                   block_size=8, m_max=2, k_max=16, n_max=3)
    with pytest.raises(ValueError, match=r"^GEMM M=3 does not fit this engine \(m_max=2\)$"):
        pack_operands(small, enc)
    with pytest.raises(ValueError, match=r"^unpack_c needs 6 C words for 3 rows, not 5$"):
        unpack_c(config, [0] * 5, 3, 3)


def test_components_need_a_config():
    from hw.array import Array
    for cls in (PE, Array, Engine):
        with pytest.raises(TypeError, match=rf"^{cls.__name__} needs a golden.Config, not 8$"):
            cls(8)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 2)])
def test_engine_one_group_per_tile(rows, cols):
    # G = 1: with R = 1 a tile starts every cycle (the most tiles in flight at once);
    # with R = 3 tiles start R cycles apart while the drain chains empty.
    config = Config(rows=rows, cols=cols, a_format="mxfp4_e2m1", w_format="mxint8",
                    sparsity=(2, 4), block_size=4, m_max=4, k_max=4, n_max=3)
    rng = np.random.default_rng(10 + rows)
    enc = random_encoded(config, 4, 3, 3, rng)
    assert config.groups(3) == 1 and config.schedule.tile_period(3) == rows
    (c, counters), = run_engine(config, [enc])
    assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


# -- protocol: what the host may do, and what the engine must never do -------------------

PROTOCOL = [
    Config(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4),
           block_size=8, m_max=3, k_max=16, n_max=3),
    Config(rows=3, cols=2, a_format="int8", w_format="int8", sparsity=(2, 4),
           m_max=4, k_max=12, n_max=3),
]
PROTOCOL_CASES = [replace(c, dataflow=df) for c in PROTOCOL for df in DATAFLOWS]


def _check_step(config, enc, words, counters):
    c = unpack_c(config, words, enc.m, enc.n)
    assert check_result(config, enc, c, counters) > enc.m * enc.n // 2


@pytest.mark.parametrize("config", PROTOCOL_CASES, ids=lambda c: c.name)
def test_guard_words_outside_the_result_are_never_written(config):
    """A full-size GEMM, then a small one: every C lane outside the small m x n (rows
    >= m, columns >= n, and the padding lanes of the last column tile) still holds what
    the large GEMM (or reset) left there."""
    rng = np.random.default_rng(20)
    big = random_encoded(config, config.m_max, config.k_max, config.n_max, rng)
    small = random_encoded(config, config.m_max - 2, config.k_max - 5, config.n_max - 2, rng)
    (w1, k1), (w2, k2) = run_steps(config, [Step(big), Step(small)], seed=20)
    _check_step(config, big, w1, k1)
    _check_step(config, small, w2, k2)
    first, second = c_lanes(config, w1), c_lanes(config, w2)
    inside = np.zeros(first.shape, bool)
    inside[:small.m, :small.n] = True
    # The large GEMM filled its m x n; its padding lanes keep the reset value 0.
    assert (first[:, config.n_max:] == 0).all()
    np.testing.assert_array_equal(second[~inside], first[~inside])
    # ... and the guard region really holds data that a stray write would destroy.
    assert np.count_nonzero(first[~inside] & 0x7FFFFFFF) > inside.size // 4


@pytest.mark.parametrize("config", PROTOCOL_CASES, ids=lambda c: c.name)
def test_restarts_idle_cycles_and_partial_rewrites(config):
    """``start`` pulses (with another shape on m/k/n) while ``busy`` are ignored; random
    idle cycles with noise on the write inputs between words change nothing; a run that
    rewrites only W (then only A) computes with the other operand left from before."""
    rng = np.random.default_rng(21)
    m, k, n = config.m_max, config.k_max - 3, config.n_max - 1
    first = random_encoded(config, m, k, n, rng)
    fresh = random_encoded(config, m, k, n, rng)
    new_w = replace(first, w_values=fresh.w_values, w_indices=fresh.w_indices,
                    w_scales=fresh.w_scales)
    new_a = replace(new_w, a_codes=fresh.a_codes, a_scales=fresh.a_scales)
    w_sels = {WR_SEL["w_data"], WR_SEL["w_scale"]}
    a_sels = {WR_SEL["a_data"], WR_SEL["a_scale"]}
    steps = [Step(first, idle=0.5, restarts=True),
             Step(new_w, sels=w_sels, idle=0.3, restarts=True),
             Step(new_a, sels=a_sels)]
    results = run_steps(config, steps, seed=21)
    for step, (words, counters) in zip(steps, results):
        _check_step(config, step.enc, words, counters)
    # The three runs really computed three different results.
    lanes = [c_lanes(config, w)[:m, :n] for w, _ in results]
    assert (lanes[0] != lanes[1]).any() and (lanes[1] != lanes[2]).any()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("config", [PROTOCOL[0], replace(PROTOCOL[1], dataflow="ws"),
                                    Config(), Config(dataflow="ws", a_format="int8",
                                                     w_format="int8", rows=3, cols=5)],
                         ids=lambda c: c.name)
def test_engine_signature_follows_the_config(config):
    """Both engines expose the same members; directions and widths follow the config:
    every address port reaches exactly the deepest word it must address, the shape
    ports hold their maxima, the data ports are one word wide."""
    sig = (WSEngine if config.dataflow == "ws" else Engine)(config).signature
    twin = replace(config, dataflow="os" if config.dataflow == "ws" else "ws")
    other = (Engine if config.dataflow == "ws" else WSEngine)(twin).signature
    # The same members but the WS accumulator memories' counters.
    acc = {"cnt_rd_acc", "cnt_wr_acc"}
    assert set(sig.members) ^ set(other.members) == acc
    assert all(sig.members[n] == other.members[n] for n in set(sig.members) - acc)
    ins = {"wr_en": 1, "wr_sel": (len(WR_SEL) - 1).bit_length(), "start": 1,
           "wr_bank": None, "wr_addr": None, "wr_data": None, "rd_addr": None,
           "m": None, "k": None, "n": None}
    outs = {"rd_data": config.cols * config.acc_bits, "busy": 1, "done": 1,
            **{name: None for name in counter_table.names(config)}}
    assert set(sig.members) == set(ins) | set(outs)
    width = {}
    for name, member in sig.members.items():
        assert member.is_port
        assert member.flow == (Flow.In if name in ins else Flow.Out), name
        shape = Shape.cast(member.shape)
        assert not shape.signed, name
        width[name] = shape.width
    for name, bits in {**ins, **outs}.items():
        assert bits is None or width[name] == bits, name

    def reaches(bits, count):   # the narrowest port that can name 0 .. count-1
        return (1 << bits) >= count and (bits == 1 or (1 << (bits - 1)) < count)

    assert reaches(width["wr_bank"], max(config.rows, config.cols))
    deepest = max(config.a_data_depth, config.a_scale_depth, config.w_data_depth,
                  config.w_scale_depth)
    assert reaches(width["wr_addr"], deepest)
    assert reaches(width["rd_addr"], config.m_max * -(-config.n_max // config.cols))
    for name, hi in (("m", config.m_max), ("k", config.k_max), ("n", config.n_max)):
        assert reaches(width[name], hi + 1), name
    bits = {"a_data": config.m_group * config.a_fmt.bits,
            "w_data": config.n_keep * (config.w_fmt.bits + config.index_bits),
            "scale": 8 if config.scaled else 0}
    assert width["wr_data"] == max(bits.values())
    # Counters hold any busy time of the largest GEMM with room to spare.
    cmax = config.schedule.cycles(config.m_max, config.k_max, config.n_max)
    assert all(width[c] == width["cnt_cycles"] and (1 << width[c]) > 1000 * cmax
               for c in counter_table.names(config))


# -- buffer-access counters ------------------------------------------------------------

def test_counter_names_follow_the_buffers():
    """Scale counters exist only where scale buffers do (not for int8), accumulator
    counters only in the weight-stationary engine; the run counters come first."""
    run = ("cnt_cycles", "cnt_issued", "cnt_stall", "cnt_tiles")
    mx, i8 = Config(), Config(a_format="int8", w_format="int8")
    assert counter_table.names(mx) == run + ("cnt_rd_a", "cnt_rd_w", "cnt_rd_as",
                                             "cnt_rd_ws", "cnt_wr_c")
    assert counter_table.names(i8) == run + ("cnt_rd_a", "cnt_rd_w", "cnt_wr_c")
    assert counter_table.names(replace(i8, dataflow="ws")) == run + (
        "cnt_rd_a", "cnt_rd_w", "cnt_wr_c", "cnt_rd_acc", "cnt_wr_acc")
    assert counter_table.names(replace(mx, dataflow="ws"))[-2:] == ("cnt_rd_acc",
                                                                    "cnt_wr_acc")


HAND = Config(rows=2, cols=2, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(2, 4),
              block_size=32, m_max=8, k_max=64, n_max=8)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_access_counters_by_hand(dataflow):
    """3 x 40 x 5 on 2 x 2 (partial tiles in M and N, K padded to 2 blocks of 8 groups,
    G = 16): the RTL counters against counts made by hand, not by the model.  OS: 6
    tiles, each reading every bank once per group (scales once per block); WS: folds of
    2 groups, 8 folds x 3 column tiles = 24 passes, the accumulators read by 21."""
    config = replace(HAND, dataflow=dataflow)
    rng = np.random.default_rng(14)
    enc = random_encoded(config, 3, 40, 5, rng)
    [(c, counters)] = run_engine(config, [enc])
    check_result(config, enc, c, counters)
    got = {name: v for name, v in counters.items() if name not in counter_table.RUN_COUNTERS}
    if dataflow == "os":
        assert got == {"cnt_rd_a": 6 * 16 * 2, "cnt_rd_w": 6 * 16 * 2, "cnt_rd_as": 6 * 2 * 2,
                       "cnt_rd_ws": 6 * 2 * 2, "cnt_wr_c": 15}
    else:
        assert config.ws_carry_exact
        assert got == {"cnt_rd_a": 3 * 3 * 16, "cnt_rd_w": 3 * 2 * 16, "cnt_rd_as": 3 * 3 * 2,
                       "cnt_rd_ws": 3 * 2 * 2, "cnt_wr_c": 15,
                       "cnt_rd_acc": (24 - 3) * 3 * 2, "cnt_wr_acc": 24 * 3 * 2}
