"""Amaranth-simulator harness shared by the engine tests of both dataflows.

Both engines have the same host interface (:func:`hw.engine.engine_signature`), so one
testbench loads the operands, starts a GEMM, waits for ``done`` and reads C back for
either; :func:`check_result` compares against the golden model and the cycle model.
"""

import numpy as np
from amaranth.sim import Simulator

from golden.gemm import EncodedOperands, gemm_encoded
from golden.pack import c_read_addresses, pack_operands, unpack_c
from golden import counters as counter_table
from hw.registry import hardware

__all__ = ["random_encoded", "run_engine", "check_result", "Step", "run_steps", "c_lanes"]


def random_encoded(config, m, k, n, rng, *, specials=False):
    """Random encoded operands covering every code (and random sparse indices)."""
    kp = config.padded_k(k)
    groups = kp // config.m_group
    nb = kp // config.block_size if config.scaled else 0
    a_codes = rng.integers(0, 1 << config.a_fmt.bits, (m, kp), dtype=np.uint8)
    a_codes[:, k:] = 0
    w_values = rng.integers(0, 1 << config.w_fmt.bits, (groups, config.n_keep, n),
                            dtype=np.uint8)
    if config.dense:
        w_indices = np.broadcast_to(np.arange(config.n_keep, dtype=np.uint8)[None, :, None],
                                    w_values.shape).copy()
    else:
        w_indices = rng.integers(0, config.m_group, w_values.shape, dtype=np.uint8)
    # Scales near the bias keep most results finite; the extremes exercise Inf/zero.
    lo, hi = (0, 256) if specials else (117, 138)
    a_scales = rng.integers(lo, hi, (m, nb), dtype=np.uint8)
    w_scales = rng.integers(lo, hi, (nb, n), dtype=np.uint8)
    return EncodedOperands(a_codes=a_codes, a_scales=a_scales, w_values=w_values,
                           w_indices=w_indices, w_scales=w_scales, m=m, k=k, n=n)


class Step:
    """One GEMM of :func:`run_steps` and how the host drives it.

    Parameters
    ----------
    enc : EncodedOperands
    sels : collection of int, optional
        Only write the buffer words of these ``wr_sel`` values (the other buffers keep
        what an earlier step wrote); all when None.
    idle : float
        Probability of an idle cycle (``wr_en`` low, random values on the other write
        inputs) before each write word; repeated, so gaps of several cycles occur.
    restarts : bool
        While ``busy``, pulse ``start`` again on random cycles with a different shape on
        ``m``, ``k``, ``n``: the engine must ignore both.
    mode : golden.config.Mode or str, optional
        A unified engine's mode of this GEMM (``enc`` is encoded for it).
    """

    def __init__(self, enc, *, sels=None, idle=0.0, restarts=False, mode=None):
        self.enc, self.sels, self.idle, self.restarts = enc, sels, idle, restarts
        self.mode = mode


def c_lanes(config, words):
    """Every lane of the whole C buffer, ``[m_max, n_tiles_max * cols]`` uint32 bit
    patterns (``unpack_c`` of all ``c_depth`` words, including padding lanes)."""
    return unpack_c(config, words, config.m_max,
                    config.n_tiles_max * config.cols).view(np.uint32)


def run_steps(config, steps, seed=0):
    """Run ``steps`` (a list of :class:`Step`) in one simulation of the engine of
    ``config.dataflow``; return a list of ``(words, counters)`` with ``words`` the raw
    ``rd_data`` of every C address ``0 .. c_depth-1`` after the step."""
    rng = np.random.default_rng(seed)
    print(f"run_steps seed={seed}")
    dut = hardware(config).engine(config)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    results = []
    # Stimulus precomputed with numpy: the write words, the idle gaps and their noise.
    plans = []
    for step in steps:
        writes = pack_operands(config, step.enc, step.mode)
        keep = (np.ones(len(writes.sel), bool) if step.sels is None
                else np.isin(writes.sel, list(step.sels)))
        words = [tuple(int(x) for x in w) for w, k in zip(writes, keep) if k]
        gaps = (rng.geometric(1 - step.idle, len(words)) - 1 if step.idle
                else np.zeros(len(words), int))
        noise = [(int(rng.integers(4)), int(rng.integers(1 << config.wr_bank_bits)),
                  int(rng.integers(1 << config.wr_addr_bits)),
                  int(rng.integers(1 << min(config.wr_data_bits, 62))))
                 for _ in range(int(gaps.sum()))]
        plans.append((words, gaps.tolist(), noise))
    ports = (dut.wr_sel, dut.wr_bank, dut.wr_addr, dut.wr_data)

    async def bench(ctx):
        for step, (words, gaps, noise) in zip(steps, plans):
            enc = step.enc
            noise = iter(noise)
            for gap, word in zip(gaps, words):
                for _ in range(gap):
                    ctx.set(dut.wr_en, 0)
                    for port, v in zip(ports, next(noise)):
                        ctx.set(port, v)
                    await ctx.tick()
                ctx.set(dut.wr_en, 1)
                for port, v in zip(ports, word):
                    ctx.set(port, v)
                await ctx.tick()
            ctx.set(dut.wr_en, 0)
            ctx.set(dut.m, enc.m)
            ctx.set(dut.k, enc.k)
            ctx.set(dut.n, enc.n)
            if config.unified:
                ctx.set(dut.mode, config.mode_enum(config.mode_index(step.mode)))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.busy) and not ctx.get(dut.done)
            if step.restarts:
                # A different legal shape (and mode) on the inputs for the rest of the run.
                if config.unified:
                    other = (config.mode_index(step.mode) + 1) % len(config.modes)
                    ctx.set(dut.mode, config.mode_enum(other))
                ctx.set(dut.m, 1 + (enc.m % config.m_max))
                ctx.set(dut.k, 1 + (enc.k % config.k_max))
                ctx.set(dut.n, 1 + (enc.n % config.n_max))
            one = config.mode(step.mode) if config.unified else config
            limit = 4 * one.schedule.cycles(enc.m, enc.k, enc.n) + 100
            pulses = 0
            for _ in range(limit):
                if ctx.get(dut.done):
                    break
                pulse = step.restarts and bool(rng.random() < 0.3)
                pulses += pulse
                ctx.set(dut.start, pulse)
                await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.done), "engine never finished"
            assert not ctx.get(dut.busy)
            assert not step.restarts or pulses > 0
            counters = {name: ctx.get(getattr(dut, name))
                        for name in counter_table.names(config)}
            words = []
            for addr in range(config.c_depth):
                ctx.set(dut.rd_addr, addr)
                await ctx.tick()
                words.append(ctx.get(dut.rd_data))
            results.append((words, counters))

    sim.add_testbench(bench)
    sim.run()
    return results


def run_engine(config, runs):
    """Load, start and read back each ``EncodedOperands`` of ``runs`` in one simulation
    of the engine of ``config.dataflow`` (:func:`run_steps`, every buffer written).

    Returns a list of ``(c, counters)`` with ``c`` as :func:`golden.pack.unpack_c` gives
    it and ``counters`` a dict of every counter (:func:`golden.counters.names`).
    """
    out = []
    for enc, (words, counters) in zip(runs, run_steps(config, [Step(e) for e in runs])):
        used = [words[addr] for addr in c_read_addresses(config, enc.m)]
        out.append((unpack_c(config, used, enc.m, enc.n), counters))
    return out


def check_result(config, enc, c, counters, schedule=None):
    """Assert that ``c`` is bit-identical to golden and the counters match the cycle
    model (every counter of :func:`golden.counters.expected`); return how many C elements are nonzero (so that a caller can check that the
    stimulus reached the arithmetic)."""
    want = gemm_encoded(enc, config)
    if config.scaled:
        np.testing.assert_array_equal(c.view(np.uint32), want.view(np.uint32))
        nonzero = np.count_nonzero(want.view(np.uint32) & 0x7FFFFFFF)
    else:
        np.testing.assert_array_equal(c, want)
        nonzero = np.count_nonzero(want)
    m, k, n = enc.m, enc.k, enc.n
    assert counters == counter_table.expected(config, m, k, n, schedule=schedule)
    return int(nonzero)
