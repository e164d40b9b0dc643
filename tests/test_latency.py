"""Latencies belong to the components: each exposes ``latency`` from the one table
``golden.latency.LATENCY``, checks it against the registers it builds, and the measured
delay equals it."""

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

import golden.latency as gc
from golden import Config
from hw.host import EngineBase, RunControl
from hw.pe import PE
from hw.ws_pe import WSBlockEnd, WSPE

MX = Config(rows=2, cols=2, sparsity=(2, 4), m_max=8, k_max=64, n_max=8)
INT8 = Config(rows=2, cols=2, a_format="int8", w_format="int8", m_max=8, k_max=64,
              n_max=8)


# Components built only to read their latency are never elaborated.
@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_components_expose_the_table():
    units = gc.LATENCY["block_convert"] + gc.LATENCY["f32_add"]
    front = gc.LATENCY["select"] + gc.LATENCY["multiply"]      # 2:4 is sparse
    assert MX.front_stages == INT8.front_stages == front == 2
    assert MX.groups_per_block > gc.LATENCY["f32_add"]      # the adder is not shortened
    # E4M3's 41-bit block sum: two resolve stages; E2M1's 13 bits: one.
    assert MX.block_acc_bits > gc.RESOLVE_STAGE_BITS and MX.resolve_stages == 2
    assert PE(MX).latency == MX.pe_latency == gc.LATENCY["pe_mx"] + front + 2 + units == 16
    fp4 = Config(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1")
    assert fp4.block_acc_bits <= gc.RESOLVE_STAGE_BITS and fp4.resolve_stages == 1
    assert PE(fp4).latency == fp4.pe_latency == MX.pe_latency - 1
    assert INT8.resolve_stages == 0
    assert PE(INT8).latency == INT8.pe_latency == gc.LATENCY["pe_int8"] + front == 5
    # Dense: the select is wires, no register.
    dense = Config(rows=2, cols=2, sparsity=(4, 4))
    assert dense.front_stages == gc.LATENCY["multiply"] == 1
    assert WSBlockEnd(MX).latency == MX.ws_block_end_latency == \
        gc.LATENCY["ws_block_end"] + units == 11
    # One block per cycle: the accumulator's adder loop cannot have stages.
    one = Config(rows=2, cols=2, sparsity=(2, 4), block_size=4)
    assert (one.acc_add_stages, PE(one).latency) == (0, gc.LATENCY["pe_mx"] + front + 2 + 3)
    two = Config(rows=2, cols=2, sparsity=(2, 4), block_size=8)
    assert two.acc_add_stages == 1
    assert WSPE(MX).latency == MX.ws_pe_latency == front + gc.LATENCY["ws_pe"] == 3
    assert WSPE.psum_latency == 1
    assert EngineBase.buffer_read_latency == MX.buffer_read_latency == 1
    assert RunControl.latency == MX.issue_latency == 1


# The aborted elaboration leaves its submodules unused: expected here.
@pytest.mark.filterwarnings("ignore:.*created but never used")
@pytest.mark.parametrize("key,cls,cfg", [("pe_mx", PE, MX), ("pe_int8", PE, INT8),
                                         ("ws_block_end", WSBlockEnd, MX),
                                         ("select", PE, MX), ("multiply", WSPE, INT8),
                                         ("ws_pe", WSPE, MX)])
def test_table_and_structure_must_agree(monkeypatch, key, cls, cfg):
    monkeypatch.setitem(gc.LATENCY, key, gc.LATENCY[key] + 1)
    with pytest.raises(AssertionError):
        Fragment.get(cls(cfg), None)


def _delay(dut, drive, probe, limit=40):
    """Cycles from ``drive(ctx)`` (one cycle) until ``probe(ctx)`` is true."""
    seen = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        drive(ctx, True)
        for cycle in range(1, limit):
            await ctx.tick()
            drive(ctx, False)
            if probe(ctx):
                seen.append(cycle)
                return

    sim.add_testbench(bench)
    sim.run()
    return seen[0]


def test_ws_pe_delay_is_its_latency():
    dut = WSPE(MX)

    def drive(ctx, on):
        ctx.set(dut.psum_in.exact, 5 if on else 0)

    assert _delay(dut, drive, lambda ctx: ctx.get(dut.psum_out.exact) == 5) == \
        dut.psum_latency


@pytest.mark.parametrize("cfg", [INT8, Config(rows=2, cols=2, a_format="int8",
                                              w_format="int8", sparsity=(4, 4))],
                         ids=["sparse", "dense"])
def test_ws_pe_product_delay_is_its_latency(cfg):
    """An activation group's products reach ``psum_out`` ``latency`` cycles later."""
    dut = WSPE(cfg)

    def drive(ctx, on):
        if on:      # load weight 3 into register 0 (slot 0, index 0), then use it
            ctx.set(dut.ld_w[0].value, 3)
            ctx.set(dut.ld_en, 1)
        else:
            ctx.set(dut.ld_en, 0)
            ctx.set(dut.a[0], 7)
            ctx.set(dut.ctl.valid, 1)

    # Products start one cycle after the load; valid stays on, so the first sum shows
    # up latency cycles after that.
    assert _delay(dut, drive, lambda ctx: ctx.get(dut.psum_out.acc) == 21) == \
        1 + dut.latency


def test_block_end_delay_is_its_latency():
    dut = WSBlockEnd(MX)

    def drive(ctx, on):
        # exact sum 1 at scales 2**0: a non-zero binary32 term once converted and added.
        ctx.set(dut.psum_in.exact, 1 << 20 if on else 0)
        ctx.set(dut.ctl.bend, on)
        ctx.set(dut.a_scale, 127)
        ctx.set(dut.ld_en, 0)

    assert _delay(dut, drive, lambda ctx: ctx.get(dut.fp_out) != 0) == dut.latency


@pytest.mark.parametrize("sparsity,block,stages", [
    ((2, 4), 32, gc.LATENCY["f32_add"]),     # 8 groups per block: all stages
    ((4, 8), 32, 3),                         # 4 groups per block: 3 stages, loop of 4
    ((16, 16), 32, 1),                       # 2 groups per block
    ((2, 4), 4, 0),                          # one block per cycle: no stage
    ((4, 4), 8, 1),
])
def test_os_accumulator_adder_stages_rule(sparsity, block, stages):
    """The OS binary32 accumulator's adder has min(f32_add, groups_per_block - 1) stages
    (its loop must close before the next block's term); the WS block-end adder, which is
    feed-forward, always has all of them."""
    cfg = Config(rows=2, cols=2, sparsity=sparsity, block_size=block)
    assert cfg.acc_add_stages == stages
    assert cfg.acc_add_stages + 1 <= cfg.groups_per_block
    ws = Config(rows=2, cols=2, sparsity=sparsity, block_size=block, dataflow="ws")
    assert ws.ws_block_end_latency == gc.LATENCY["ws_block_end"] + \
        gc.LATENCY["block_convert"] + gc.LATENCY["f32_add"]
    assert INT8.acc_add_stages == 0


@pytest.mark.parametrize("modes,front,add", [
    # 2:4 E4M3 (8 groups per block) with pair-sparse 4:8p E2M1 (4 groups): the shortest
    # block sets the shared adder; a sparse mode puts a select stage in the front end.
    ("mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p", 2, 3),
    ("mxfp8_e4m3@2:4,mxfp4_e2m1@4:4", 2, gc.LATENCY["f32_add"]),
    # Every mode dense: the byte select is wires, no select stage.
    ("mxfp8_e4m3@4:4,mxfp4_e2m1@8:8", 1, 3),
])
def test_unified_engine_has_one_latency(modes, front, add):
    """A unified engine's PE latency is one number for every mode: the front end has a
    select stage when some mode is sparse, the OS adder the minimum over the modes of
    their own ``acc_add_stages``; the MultiPE builds exactly that many stages."""
    from hw.multi_pe import MultiPE
    cfg = Config(rows=2, cols=2, modes=modes)
    assert cfg.unified
    assert cfg.front_stages == front
    assert cfg.acc_add_stages == add == min(cfg.mode(m).acc_add_stages for m in cfg.modes)
    assert cfg.pe_latency == (gc.LATENCY["pe_mx"] + front + cfg.resolve_stages
                              + gc.LATENCY["block_convert"] + add)
    assert all(cfg.schedule.mode(m).pe_latency == cfg.pe_latency for m in cfg.modes)
    Fragment.get(MultiPE(cfg), None)    # elaboration asserts its stage count
