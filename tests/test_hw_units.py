# amaranth: UnusedElaboratable=no
"""Simulation tests of the PE's arithmetic units (``hw.units``) against numpy oracles.

Python simulation costs tens of microseconds per evaluation, so every test runs many
copies of a unit side by side (:class:`_Lanes`) and drives whole vectors per step.
"""

import itertools
import re

import ml_dtypes
import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Elaboratable, Module, Shape, Signal
from amaranth.hdl import signed as signed_
from amaranth.sim import Simulator

from golden import Config, FORMATS, get_format
from golden.formats import decode_fields
from golden.gemm import round_to_binary32
from hw.binary32 import ADD_CUTS, CONVERT_CUTS
from hw.units import (BINARY32_QNAN, BlockConverter, ElementDecoder, Float32Adder,
                      Multiplier, SparseSelect)


# -- lane-parallel simulation harness --------------------------------------------------------


def _shape(port):
    return Shape.cast(port.shape())


class _Lanes(Elaboratable):
    """``n`` copies of a unit; each named port of all copies is a few wide signals.

    The simulator writes each signal's mask as a decimal literal, which Python limits to
    4300 digits, so a port is split over several buses of at most ``_BUS_BITS`` bits.
    """

    _BUS_BITS = 8192

    def __init__(self, factory, n, ins, outs):
        self.n = n
        self.units = [factory() for _ in range(n)]
        u0 = self.units[0]
        self.widths = {k: _shape(getattr(u0, k)).width for k in (*ins, *outs)}
        self.signed = {k: _shape(getattr(u0, k)).signed for k in outs}
        self.ins = {k: self._buses(k, "in") for k in ins}
        self.outs = {k: self._buses(k, "out") for k in outs}

    def _buses(self, k, prefix):
        """``[(first_lane, lane_count, signal), ...]`` covering all lanes of port ``k``."""
        per = max(1, self._BUS_BITS // self.widths[k])
        return [(i, min(per, self.n - i),
                 Signal(self.widths[k] * min(per, self.n - i), name=f"{prefix}_{k}_{i}"))
                for i in range(0, self.n, per)]

    def elaborate(self, platform):
        m = Module()
        for i, u in enumerate(self.units):
            m.submodules[f"lane{i}"] = u
        for k, buses in self.ins.items():
            w = self.widths[k]
            for first, count, bus in buses:
                m.d.comb += [getattr(self.units[first + i], k).eq(bus[i * w:(i + 1) * w])
                             for i in range(count)]
        for k, buses in self.outs.items():
            for first, count, bus in buses:
                m.d.comb += bus.eq(Cat(getattr(u, k)
                                       for u in self.units[first:first + count]))
        return m


def simulate(factory, inputs, outputs, lanes=128):
    """Evaluate a unit on vectors of inputs.

    ``inputs`` maps port names to equal-length sequences of Python/numpy integers
    (negative values are written in two's complement).  Returns a dict mapping each
    output port name to a list of Python ints (sign-extended for signed ports).  A
    pipelined unit (``latency`` register stages) gets a clock and a new batch every
    cycle; its outputs are read ``latency`` cycles after their inputs.
    """
    total = len(next(iter(inputs.values())))
    lanes = min(lanes, total)
    top = _Lanes(factory, lanes, list(inputs), outputs)
    latency = getattr(top.units[0], "latency", 0)
    cols = {k: [int(x) for x in v] for k, v in inputs.items()}
    result = {k: [] for k in outputs}
    starts = list(range(0, total, lanes))

    def put(ctx, start):
        count = min(lanes, total - start)
        for k, col in cols.items():
            w = top.widths[k]
            mask = (1 << w) - 1
            for first, n, bus in top.ins[k]:
                word = 0
                for i, x in enumerate(col[start + first:start + min(first + n, count)]):
                    word |= (x & mask) << (i * w)
                ctx.set(bus, word)

    def take(ctx, start):
        count = min(lanes, total - start)
        for k in outputs:
            w = top.widths[k]
            mask, top_bit = (1 << w) - 1, 1 << (w - 1)
            for first, n, bus in top.outs[k]:
                word = ctx.get(bus)
                for i in range(min(n, count - first)):
                    v = (word >> (i * w)) & mask
                    if top.signed[k] and v & top_bit:
                        v -= 1 << w
                    result[k].append(v)

    async def testbench(ctx):
        for step in range(len(starts) + latency):
            if step < len(starts):
                put(ctx, starts[step])
            if step >= latency:
                take(ctx, starts[step - latency])
            if latency:
                await ctx.tick()

    sim = Simulator(top)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result


# -- element decoder -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
def test_decoder_exhaustive(name):
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits)
    outs = ["neg", "sig", "nan", "inf"] + (["shift"] if fmt.shift_bits else [])
    got = {k: np.array(v) for k, v in
           simulate(lambda: ElementDecoder(fmt), {"code": codes}, outs).items()}
    neg, sig, shift, is_nan, is_inf = decode_fields(fmt, codes)
    np.testing.assert_array_equal(got["neg"], neg)
    np.testing.assert_array_equal(got["sig"], sig)
    np.testing.assert_array_equal(got.get("shift", np.zeros_like(sig)), shift)
    np.testing.assert_array_equal(got["nan"], is_nan)
    np.testing.assert_array_equal(got["inf"], is_inf)

    # The decoded fields must give the element's value; the oracle for that is
    # independent of golden where ml_dtypes has the format, plain two's complement else.
    mag = got["sig"] * np.exp2(got.get("shift", 0) + fmt.lsb_exp)
    value = np.where(got["neg"] == 1, -mag, mag)
    value = np.where(got["inf"] == 1, np.where(got["neg"] == 1, -np.inf, np.inf), value)
    value = np.where(got["nan"] == 1, np.nan, value)
    if fmt.ml_dtype:
        ref = codes.astype(np.uint8).view(getattr(ml_dtypes, fmt.ml_dtype)).astype(np.float64)
    else:
        ref = np.where(codes >= 1 << (fmt.bits - 1), codes - (1 << fmt.bits), codes)
        ref = ref * 2.0 ** fmt.lsb_exp
    np.testing.assert_array_equal(value, ref)
    np.testing.assert_array_equal(value, fmt.decode_table())
    # FP signs come straight from the sign bit, also for -0 and NaN codes.
    if fmt.is_fp:
        np.testing.assert_array_equal(got["neg"], codes >> (fmt.bits - 1))


def test_decoder_ports():
    assert not hasattr(ElementDecoder("mxint4"), "shift")
    dec = ElementDecoder("mxfp8_e5m2")
    assert (len(dec.code), len(dec.sig), len(dec.shift)) == (8, 3, 5)
    with pytest.raises(ValueError, match=r"^Unknown element format 'fp9'; choose one of "):
        ElementDecoder("fp9")
    with pytest.raises(TypeError, match=r"^Element format must be a format name, not 3$"):
        ElementDecoder(3)


def test_config_special_properties():
    e4m3 = Config(a_format="mxfp8_e4m3", w_format="mxfp8_e4m3")
    assert (e4m3.product_has_nan, e4m3.product_has_inf) == (True, False)
    mixed = Config(a_format="mxfp4_e2m1", w_format="mxfp8_e5m2")
    assert (mixed.product_has_nan, mixed.product_has_inf) == (True, True)
    plain = Config(a_format="mxfp6_e3m2", w_format="mxint4")
    assert (plain.product_has_nan, plain.product_has_inf) == (False, False)


# -- multiplier ------------------------------------------------------------------------------


_SMALL = ["mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint4", "mxint2"]
_PAIRS = ([*itertools.product(_SMALL, _SMALL)]
          + [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
             ("mxfp8_e4m3", "mxfp8_e5m2"), ("mxfp8_e5m2", "mxfp8_e4m3"),
             ("mxint8", "mxfp8_e4m3"), ("int8", "int8")])


def _check_products(cfg, a, w, got):
    """Compare simulated products and flags with float64 products of decoded elements."""
    a_val = cfg.a_fmt.decode_table()[a]
    w_val = cfg.w_fmt.decode_table()[w]
    with np.errstate(invalid="ignore"):
        ref = a_val * w_val        # exact: every product needs at most 24 significant bits
    prod = np.array([float(p) for p in got["product"]]) * 2.0 ** cfg.product_lsb_exp
    if not cfg.scaled:
        np.testing.assert_array_equal(prod, ref)
        return
    nan, pos, neg = (np.array(got[k], dtype=bool) for k in ("nan", "inf_pos", "inf_neg"))
    np.testing.assert_array_equal(nan, np.isnan(ref))
    np.testing.assert_array_equal(pos, ref == np.inf)
    np.testing.assert_array_equal(neg, ref == -np.inf)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(prod[finite], ref[finite])
    assert not np.any(prod[~finite])
    # Every product fits the declared width with its sign.
    lim = 1 << (cfg.product_bits - 1)
    assert all(-lim <= p < lim for p in got["product"])


@pytest.mark.parametrize("a_name,w_name", _PAIRS, ids=[f"{a}-x-{w}" for a, w in _PAIRS])
def test_multiplier_exhaustive(a_name, w_name):
    cfg = Config(a_format=a_name, w_format=w_name)
    na, nw = 1 << cfg.a_fmt.bits, 1 << cfg.w_fmt.bits
    a = np.repeat(np.arange(na), nw)
    w = np.tile(np.arange(nw), na)
    outs = ["product"] + (["nan", "inf_pos", "inf_neg"] if cfg.scaled else [])
    got = simulate(lambda: Multiplier(cfg), {"a": a, "w": w}, outs,
                   lanes=64)
    _check_products(cfg, a, w, got)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp4_e2m1", "mxint8"])
def test_multiplier_complement_exhaustive(fmt):
    """``complement``: ``product + neg`` is the exact product (the OS PE adds the neg
    bits in its carry-save accumulator)."""
    cfg = Config(a_format=fmt, w_format=fmt)
    na = 1 << cfg.a_fmt.bits
    a, w = np.repeat(np.arange(na), na), np.tile(np.arange(na), na)
    got = simulate(lambda: Multiplier(cfg, complement=True), {"a": a, "w": w},
                   ["product", "neg", "nan", "inf_pos", "inf_neg"], lanes=64)
    neg = np.array(got["neg"], dtype=np.int64)
    assert neg.any() and not neg.all()
    got["product"] = [p + int(n) for p, n in zip(got["product"], neg)]
    _check_products(cfg, a, w, got)
    with pytest.raises(ValueError, match=r"^Multiplier complement needs an MX "
                                         r"configuration, not a_format=int8 with "
                                         r"w_format=int8$"):
        Multiplier(Config(a_format="int8", w_format="int8"), complement=True)


def test_multiplier_ports():
    cfg = Config(a_format="mxfp8_e5m2", w_format="mxfp8_e5m2")
    mul = Multiplier(cfg)
    assert len(mul.product) == cfg.product_bits == 65 and mul.product.shape().signed
    int8 = Multiplier(Config(a_format="int8", w_format="int8"))
    assert len(int8.product) == 16
    assert not any(hasattr(int8, k) for k in ("nan", "inf_pos", "inf_neg"))
    with pytest.raises(TypeError, match=r"^Multiplier needs a golden\.Config, not 'x'$"):
        Multiplier("x")


# -- sparse select ---------------------------------------------------------------------------


def _run_select(cfg, groups, indices):
    a_bits, ib = cfg.a_fmt.bits, cfg.index_bits
    group_words = [sum(int(c) << (t * a_bits) for t, c in enumerate(g)) for g in groups]
    inputs = {"group": group_words}
    if not cfg.dense:
        inputs["index"] = [sum(int(x) << (s * ib) for s, x in enumerate(ix)) for ix in indices]
    got = simulate(lambda: SparseSelect(cfg), inputs, ["selected"], lanes=64)["selected"]
    mask = (1 << a_bits) - 1
    return np.array([[(v >> (s * a_bits)) & mask for s in range(cfg.n_keep)] for v in got])


@pytest.mark.parametrize("fmt,sparsity,count", [
    ("mxfp8_e4m3", (2, 4), None), ("mxfp6_e3m2", (2, 8), 512), ("mxfp4_e2m1", (1, 16), 512),
    ("mxint2", (3, 4), 256)])
def test_sparse_select(fmt, sparsity, count):
    cfg = Config(a_format=fmt, w_format=fmt, sparsity=sparsity)
    rng = np.random.default_rng(7)
    n, m = sparsity
    if count is None:
        # Every index pattern (duplicates and any order included), each 16 times.
        patterns = np.array(list(itertools.product(range(m), repeat=n)) * 16)
    else:
        patterns = rng.integers(0, m, size=(count, n))
    groups = rng.integers(0, 1 << cfg.a_fmt.bits, size=(len(patterns), m))
    got = _run_select(cfg, groups, patterns)
    np.testing.assert_array_equal(got, np.take_along_axis(groups, patterns, axis=1))


@pytest.mark.parametrize("fmt,m", [("mxfp8_e4m3", 4), ("mxfp4_e2m1", 16), ("int8", 1)])
def test_sparse_select_dense(fmt, m):
    cfg = Config(a_format=fmt, w_format=fmt, sparsity=(m, m))
    sel = SparseSelect(cfg)
    assert not hasattr(sel, "index")
    groups = np.random.default_rng(3).integers(0, 1 << cfg.a_fmt.bits, size=(64, m))
    np.testing.assert_array_equal(_run_select(cfg, groups, None), groups)


# -- block converter -------------------------------------------------------------------------


def _oracle_binary32(n, e):
    """Exact RNE rounding of ``n * 2**e`` to a binary32 pattern, with Python integers."""
    if n == 0:
        return 0
    sign, mag = int(n < 0) << 31, abs(n)
    q = max(mag.bit_length() - 1 + e - 23, -149)   # exponent of the result's LSB
    sh = q - e
    if sh <= 0:
        sig = mag << -sh
    else:
        sig, rem = mag >> sh, mag & ((1 << sh) - 1)
        half = 1 << (sh - 1)
        sig += rem > half or (rem == half and sig & 1)
    if sig == 1 << 24:
        sig, q = sig >> 1, q + 1
    field = q + 150 if sig >> 23 else 0
    if field >= 255:
        return sign | 0x7F800000
    return sign | (field << 23) | (sig & 0x7FFFFF)


def _exp0(cfg, sa, sw):
    return int(sa) + int(sw) - 254 + cfg.product_lsb_exp


def _scales_for(cfg, exp0, rng):
    """Two E8M0 codes (each 0..254) with the given ``exp0``, or None if unreachable."""
    total = exp0 + 254 - cfg.product_lsb_exp
    if not 0 <= total <= 508:
        return None
    sa = int(rng.integers(max(0, total - 254), min(254, total) + 1))
    return sa, total - sa


def _converter_cases(cfg, count, rng):
    """Random and directed (sum, nan, inf_pos, inf_neg, a_scale, w_scale) cases."""
    width = cfg.block_acc_bits
    cases = []

    def add(n, e, flags=(0, 0, 0)):
        sc = _scales_for(cfg, e, rng)
        if sc is not None and -(1 << (width - 1)) <= n < 1 << (width - 1):
            cases.append((n, *flags, *sc))

    # Random: sums of every bit length, scales aimed at the binary32 range (and beyond).
    for _ in range(count):
        bits = int(rng.integers(0, width))
        n = int(rng.integers(0, 1 << 62)) >> max(0, 62 - bits)
        if bits > 62:
            n = (n << (bits - 62)) | int(rng.integers(0, 1 << (bits - 62)))
        n = -n if rng.integers(2) else n
        if rng.random() < 0.8:
            target = int(rng.integers(-160, 135))
            add(n, target - max(abs(n).bit_length() - 1, 0))
        else:
            cases.append((n, 0, 0, 0, int(rng.integers(0, 255)), int(rng.integers(0, 255))))

    # Ties, and one either side, at the 24-bit boundary of normal results.
    for k in range(1, min(width - 25, 30)):
        for sig in (0xFFFFFF, 0x800000, 0xABCDEF, 0xABCDEE, 0xFFFFFE):
            tie = (sig << k) | (1 << (k - 1))
            for n in (tie - 1, tie, tie + 1, -tie):
                add(n, int(rng.integers(-126, 100)) - 23 - k)
    # Subnormal results and subnormal ties: the result LSB (2**-149) sits at bit s of n.
    for s in range(0, min(width - 2, 40)):
        for n in (1 << s, 3 << s, (5 << s) >> 1, (7 << s) >> 1, (3 << s) - 1,
                  ((1 << 23) - 1) << s | (1 << s >> 1), ((1 << 24) - 1) << s >> 1):
            add(n, -149 - s)
            add(-n, -149 - s)
    # Results that round to (+-)0, and the smallest subnormal.
    for n in (1, 2, 3, -1, -2, -3, (1 << (width - 2))):
        for e in (-150, -151, -149, -300):
            add(n, e - max(n.bit_length() - 1, 0) if abs(n) > 3 else e)
    # Overflow threshold: (2**24 - 1/2) * 2**104 rounds to Inf, anything below does not.
    for k in range(0, min(width - 26, 30)):
        thr = ((1 << 25) - 1) << k
        for n in (thr, thr - 1, thr + 1, -thr, -(thr - 1), ((1 << 24) - 1) << (k + 1)):
            add(n, 103 - k)
    # Sums that need every accumulator bit, and zero.
    for n in ((1 << (width - 1)) - 1, -(1 << (width - 1)), -(1 << (width - 1)) + 1, 0):
        for e in (-200, -149 - width, -30, 0, 60, 127 - width):
            add(n, e)
    # Flags and NaN scales, with ordinary and zero sums.
    for n, fl, sa, sw in itertools.product((0, 5, -5), itertools.product((0, 1), repeat=3),
                                           (0, 127, 254, 255), (127, 255)):
        cases.append((n, *fl, sa, sw))
    return cases


def _expected_converter(cfg, cases):
    n, nan, pos, neg, sa, sw = (list(c) for c in zip(*cases))
    exp = np.array([_exp0(cfg, a, w) for a, w in zip(sa, sw)])
    exp_ok = np.where(np.array(sa) == 255, 0, exp)   # the oracle needs finite exponents
    ref = round_to_binary32(np.array(n, dtype=object), exp_ok).view(np.uint32).astype(np.int64)
    nan = np.array(nan, bool) & cfg.product_has_nan
    pos = np.array(pos, bool) & cfg.product_has_inf
    neg = np.array(neg, bool) & cfg.product_has_inf
    is_nan = nan | (pos & neg) | (np.array(sa) == 255) | (np.array(sw) == 255)
    ref = np.where(pos, 0x7F800000, np.where(neg, 0xFF800000, ref))
    return np.where(is_nan, BINARY32_QNAN, ref), exp


_CONV_CONFIGS = [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
                 ("mxint8", "mxfp4_e2m1"), ("mxint2", "mxint2")]


def _run_converter(a_name, w_name, count, seed, stages=None):
    cfg = Config(a_format=a_name, w_format=w_name)
    rng = np.random.default_rng(seed)
    cases = _converter_cases(cfg, count, rng)
    names = ["sum", "nan", "inf_pos", "inf_neg", "a_scale", "w_scale"]
    got = simulate(lambda: BlockConverter(cfg, stages=stages),
                   dict(zip(names, zip(*cases))), ["result"])
    got = np.array(got["result"], dtype=np.int64)
    ref, exp = _expected_converter(cfg, cases)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, [(cases[i], exp[i], hex(got[i]), hex(ref[i])) for i in bad[:8]]
    # The golden oracle agrees with an exact Python-integer rounding on flag-free cases.
    for i, c in enumerate(cases):
        if not any(c[1:4]) and 255 not in c[4:]:
            assert got[i] == _oracle_binary32(c[0], int(exp[i])), (c, exp[i])
    return got


@pytest.mark.parametrize("a_name,w_name", _CONV_CONFIGS,
                         ids=[f"{a}-x-{w}" for a, w in _CONV_CONFIGS])
def test_block_converter(a_name, w_name):
    got = _run_converter(a_name, w_name, 3_000, seed=11)
    # The directed cases must reach subnormals, -0.0, Inf and NaN.
    for pattern in (0x80000000, 0x7F800000, 0xFF800000, BINARY32_QNAN, 1, 0x80000001):
        assert pattern in got


@pytest.mark.slow
@pytest.mark.parametrize("a_name,w_name", _CONV_CONFIGS,
                         ids=[f"{a}-x-{w}" for a, w in _CONV_CONFIGS])
def test_block_converter_long(a_name, w_name):
    _run_converter(a_name, w_name, 100_000, seed=12)


# The Python simulator takes minutes per converter build at E5M2's 69-bit block sum: the
# default run builds the fully cut converter, --slow every other stage count too.
@pytest.mark.parametrize("stages", [
    pytest.param(s, marks=() if s == len(CONVERT_CUTS) else pytest.mark.slow)
    for s in range(len(CONVERT_CUTS) + 1)])
def test_block_converter_every_stage_count(stages):
    """Every allowed stage count gives the same results (fewer vectors than above)."""
    got = _run_converter("mxfp8_e5m2", "mxfp8_e5m2", 1_500, seed=20 + stages, stages=stages)
    assert BINARY32_QNAN in got and 0x7F800000 in got


def test_block_converter_rejects_int8():
    with pytest.raises(ValueError, match=r"^BlockConverter needs an MX configuration, "
                                         r"not a_format=int8 with w_format=int8$"):
        BlockConverter(Config(a_format="int8", w_format="int8"))


# -- binary32 adder --------------------------------------------------------------------------


def _adder_cases(count, rng):
    u32 = lambda n: rng.integers(0, 1 << 32, size=n, dtype=np.uint64)
    parts = []
    # Random bit patterns.
    parts.append((u32(count), u32(count)))
    # Close exponents and opposite signs: cancellation.
    a = u32(count)
    delta = rng.integers(-2, 3, size=count).astype(np.int64)
    exp_b = np.clip(((a >> 23) & 0xFF).astype(np.int64) + delta, 0, 254).astype(np.uint64)
    b = ((a & 0x80000000) ^ 0x80000000) | (exp_b << 23) | (u32(count) & 0x7FFFFF)
    parts.append((a, b))
    # Exponent differences around the guard/round/sticky positions (ties and near-ties).
    a = u32(count) & 0xBFFFFFFF | 0x20000000
    d = rng.integers(20, 30, size=count).astype(np.uint64)
    exp_b = ((a >> 23) & 0xFF) - d
    b = (u32(count) & 0x80000000) | (exp_b << 23) | (rng.choice([0, 1, 0x400000], size=count)
                                                      .astype(np.uint64))
    parts.append((a, b))
    # Subnormals with each other and with small normals.
    a = (u32(count) & 0x807FFFFF) | (rng.integers(0, 3, size=count).astype(np.uint64) << 23)
    b = u32(count) & 0x807FFFFF
    parts.append((a, b))
    # Directed specials: every pair of a small set of interesting patterns.
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
                        0x7F800001, 1, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF,
                        0xFF7FFFFF, 0x7F7FFFFE, 0x3F800000, 0xBF800000, 0x33800000,
                        0x33800001, 0x34000000, 0x73800000, 0x73000000, 0xB3800000],
                       dtype=np.uint64)
    parts.append((np.repeat(special, len(special)), np.tile(special, len(special))))
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    return a.astype(np.uint32), b.astype(np.uint32)


def _expected_sum(a, b):
    with np.errstate(over="ignore", invalid="ignore"):
        s = a.view(np.float32) + b.view(np.float32)
    return np.where(np.isnan(s), BINARY32_QNAN, s.view(np.uint32)).astype(np.uint32)


def _run_adder(count, seed, stages=None):
    a, b = _adder_cases(count, np.random.default_rng(seed))
    got = np.array(simulate(lambda: Float32Adder(stages=stages), {"a": a, "b": b},
                            ["sum"])["sum"], dtype=np.uint32)
    ref = _expected_sum(a, b)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(ref[i])) for i in bad[:8]]
    return a, b, got


def test_float32_adder():
    # 4 x 8,000 random vectors plus the directed specials (test_float32_adder_long, under
    # --slow, runs 4 x 250,000).
    a, b, got = _run_adder(8_000, seed=5)
    assert len(a) >= 32_000
    # The directed cases produced the rule-specific results.
    assert {0x80000000, 0x7F800000, 0xFF800000, BINARY32_QNAN, 1} <= set(got.tolist())


@pytest.mark.slow
def test_float32_adder_long():
    _run_adder(250_000, seed=6)


# The default run builds the unpipelined and the fully cut adder, --slow every count.
@pytest.mark.parametrize("stages", [
    pytest.param(s, marks=() if s in (0, len(ADD_CUTS)) else pytest.mark.slow)
    for s in range(len(ADD_CUTS) + 1)])
def test_float32_adder_every_stage_count(stages):
    """Every allowed stage count (the OS accumulator uses 0 .. groups_per_block - 1)
    gives IEEE results (fewer vectors than above; the directed specials all run)."""
    a, b, got = _run_adder(500, seed=30 + stages, stages=stages)
    assert Float32Adder(stages=stages).latency == stages
    assert {0x80000000, 0x7F800000, BINARY32_QNAN, 1} <= set(got.tolist())


@pytest.mark.parametrize("unit,cuts", [("Float32Adder", ADD_CUTS),
                                       ("BlockConverter", CONVERT_CUTS)])
def test_stage_count_out_of_range_is_one_sentence(unit, cuts):
    make = (lambda n: Float32Adder(stages=n)) if unit == "Float32Adder" else \
        (lambda n: BlockConverter(Config(), stages=n))
    with pytest.raises(ValueError, match=rf"^{unit} stages must be a whole number from 0 "
                                         rf"to {len(cuts)}, not {len(cuts) + 1}$"):
        make(len(cuts) + 1)


# -- log-depth adders and the split accumulator -------------------------------------------------


class _AdderTop(Elaboratable):
    def __init__(self):
        from hw.adder import multi_add, prefix_add
        self.a, self.b, self.c = Signal(signed_(11)), Signal(17), Signal(signed_(6))
        self.cin = Signal()
        self.two, self.many = Signal(17), Signal(17)
        self.plus_one = Signal(17)     # a constant carry in, with signals per level
        self._ops = (prefix_add, multi_add)

    def elaborate(self, platform):
        prefix_add, multi_add = self._ops
        m = Module()
        m.d.comb += [self.two.eq(prefix_add(self.a, self.b, 17, self.cin)),
                     self.many.eq(multi_add([self.a, self.b, self.c, self.b, self.a], 17)),
                     self.plus_one.eq(prefix_add(self.a, self.b, 17, 1, m=m))]
        return m


def test_prefix_and_multi_operand_adders_wrap_like_plus():
    rng = np.random.default_rng(40)
    n = 3_000
    a = rng.integers(-1024, 1024, n)
    b = rng.integers(0, 1 << 17, n)
    c = rng.integers(-32, 32, n)
    cin = rng.integers(0, 2, n)
    a[:4], b[:4], cin[:4] = [-1, -1, 1023, -1024], [(1 << 17) - 1, 1, 0, 0], [1, 1, 0, 1]
    top = _AdderTop()
    got = {"two": [], "many": [], "plus_one": []}
    sim = Simulator(top)

    async def bench(ctx):
        for i in range(n):
            ctx.set(top.a, int(a[i]))
            ctx.set(top.b, int(b[i]))
            ctx.set(top.c, int(c[i]))
            ctx.set(top.cin, int(cin[i]))
            got["two"].append(ctx.get(top.two))
            got["many"].append(ctx.get(top.many))
            got["plus_one"].append(ctx.get(top.plus_one))

    sim.add_testbench(bench)
    sim.run()
    mask = (1 << 17) - 1
    assert got["two"] == ((a + b + cin) & mask).tolist()
    assert got["many"] == ((2 * a + 2 * b + c) & mask).tolist()
    assert got["plus_one"] == ((a + b + 1) & mask).tolist()


class _SplitTop(Elaboratable):
    def __init__(self, width):
        self.width = width
        self.value, self.restart, self.enable = Signal(signed_(width - 3)), Signal(), Signal()
        self.total = Signal(width)
        self.now = Signal(width)

    def elaborate(self, platform):
        from hw.pe import SplitAccumulator
        m = Module()
        acc = SplitAccumulator(m, self.width, self.value, self.restart, self.enable, "acc")
        self.stages = acc.stages
        m.d.comb += [self.total.eq(acc.total), self.now.eq(acc.sum_now)]
        return m


@pytest.mark.parametrize("width", [32, 9])
def test_split_accumulator_matches_a_wrapping_running_sum(width):
    """The two-half accumulator equals a wrapping running sum with restarts, ``stages``
    cycles after each term (``sum_now`` one cycle earlier), and holds while idle."""
    from hw.pe import SplitAccumulator
    rng = np.random.default_rng(41 + width)
    n = 600
    lim = 1 << (width - 4)
    value = rng.integers(-lim, lim, n)
    value[:40] = lim - 1                       # many carries into the high half
    value[40:80] = -lim                        # and borrows (wraparound)
    restart = rng.random(n) < 0.05
    enable = rng.random(n) < 0.8
    expect, acc = [], 0
    for v, r, e in zip(value, restart, enable):
        if e:
            acc = (0 if r else acc) + int(v)
        expect.append(acc % (1 << width))
    top = _SplitTop(width)
    lag = SplitAccumulator.stages
    got_total, got_now = [], []
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for i in range(n + lag):
            if i < n:
                ctx.set(top.value, int(value[i]))
                ctx.set(top.restart, int(restart[i]))
                ctx.set(top.enable, int(enable[i]))
            else:
                ctx.set(top.enable, 0)
            await ctx.tick()
            got_total.append(ctx.get(top.total))
            got_now.append(ctx.get(top.now))

    sim.add_testbench(bench)
    sim.run()
    # After tick i the registered total holds the sum up to term i - (lag - 1).
    assert got_total[lag - 1:lag - 1 + n] == expect
    assert got_now[lag - 2:lag - 2 + n] == expect


# -- Verilog conversion ----------------------------------------------------------------------


def _port_names(text):
    return set(re.findall(r"^\s*(?:input|output)\s+(?:wire\s+)?(?:signed\s+)?"
                          r"(?:\[\d+:0\]\s+)?(\w+);", text, re.M))


@pytest.mark.parametrize("name", list(FORMATS))
def test_verilog_conversion(name):
    fmt = get_format(name)
    ports = _port_names(verilog.convert(ElementDecoder(fmt)))
    assert {"code", "neg", "sig", "nan", "inf"} <= ports
    cfg = Config(a_format=name, w_format=name, sparsity=(2, 8))
    ports = _port_names(verilog.convert(Multiplier(cfg)))
    assert {"a", "w", "product"} <= ports
    assert ({"nan", "inf_pos", "inf_neg"} <= ports) == cfg.scaled
    assert {"group", "index", "selected"} <= _port_names(verilog.convert(SparseSelect(cfg)))
    if cfg.scaled:
        ports = _port_names(verilog.convert(BlockConverter(cfg)))
        assert {"sum", "nan", "inf_pos", "inf_neg", "a_scale", "w_scale", "result"} <= ports


def test_verilog_conversion_adder():
    assert {"a", "b", "sum"} <= _port_names(verilog.convert(Float32Adder()))
