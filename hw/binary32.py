"""binary32 arithmetic units: the block converter (exact block sum -> binary32) and the
binary32 adder, sharing one normalize/round/encode datapath (RNE, subnormals, overflow to
Inf, canonical NaN).  Field widths come from :data:`golden.formats.BINARY32`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import BINARY32
from golden.latency import LATENCY
from golden.binary32 import CANONICAL_NAN
from golden.quant import SCALE_BIAS, SCALE_NAN
from .component import ConfigComponent
from .adder import prefix_add
from .element import binary32_layout

__all__ = ["BlockConverter", "Float32Adder", "BINARY32_QNAN", "BINARY32_INF",
           "CONVERT_CUTS", "ADD_CUTS"]

#: Where :class:`BlockConverter` may place register stages, in the order they are used:
#: after the magnitude and exponent, after the leading-one/shift-amount logic, after the
#: shift, after the rounding increment.
CONVERT_CUTS = ("mag", "lzd", "shift", "round")
#: Where :class:`Float32Adder` may place register stages, in the order they are used:
#: after the aligned add, after the leading-one logic, after operand ordering and
#: unpacking, after the rounding shift, after the rounding increment, after the
#: alignment shift.
ADD_CUTS = ("add", "lzd", "align", "shift", "round", "yal")

#: The canonical quiet NaN every unit emits (sign 0, quiet bit set, payload 0).
BINARY32_QNAN = CANONICAL_NAN
#: +Inf; -Inf is this with bit 31 set.
BINARY32_INF = ((1 << BINARY32.ebits) - 1) << BINARY32.mbits

# binary32 field geometry (IEEE 754, fixed: not a configuration parameter), from the one
# table in golden.formats.
_B32_BITS = BINARY32.bits
_B32_MBITS = BINARY32.mbits
_B32_EBITS = BINARY32.ebits
_B32_BIAS = BINARY32.bias
_B32_EMIN = BINARY32.emin                 # exponent of the smallest normal, -126
_B32_EXP_ONES = (1 << _B32_EBITS) - 1     # the Inf/NaN exponent field
_B32_MAG = _B32_BITS - 1                  # width of the magnitude (all but the sign)


# -- binary32 rounding shared by the converter and the adder ---------------------------------


def _leading_one(m, value, name):
    """Position of the most significant set bit of ``value`` (0 when ``value`` is 0).

    A tree (log2 of the width mux levels, not a priority chain of one mux per bit): each
    node of width ``2w`` takes its upper half's position when that half has a set bit,
    else its lower half's, and that choice is the position's next bit."""
    pos = Signal(range(max(len(value), 2)), name=name)
    size = 1 << max(len(value) - 1, 1).bit_length()
    bits = Cat(value, Const(0, size - len(value)))
    # Each node: (some bit set, position within the node, as a list of bits LSB first).
    # Each level is a signal, so no expression is copied into the next level twice.
    any_ = Signal(size, name=f"{name}_any0")
    m.d.comb += any_.eq(bits)
    at, level = None, 0
    while size > 1:
        size, level = size // 2, level + 1
        lo_any, hi_any = any_[0::2], any_[1::2]
        nxt_any = Signal(size, name=f"{name}_any{level}")
        nxt_at = Signal(size * level, name=f"{name}_at{level}")
        m.d.comb += nxt_any.eq(lo_any | hi_any)
        parts = []
        for i in range(size):
            hi = hi_any[i]
            if at is not None:
                parts.append(Mux(hi, at.word_select(2 * i + 1, level - 1),
                                 at.word_select(2 * i, level - 1)))
            parts.append(hi)
        m.d.comb += nxt_at.eq(Cat(*parts))
        any_, at = nxt_any, nxt_at
    m.d.comb += pos.eq(at)
    return pos


class _Stages:
    """The pipeline cuts of one unit: :meth:`cut` registers the values it is given at a
    cut that is on and passes them through at one that is off.

    ``cuts`` is the set of cut names in use; :attr:`count` counts the register stages
    placed, which the unit checks against its ``latency``.
    """

    def __init__(self, m, cuts):
        self.m, self.cuts, self.count = m, frozenset(cuts), 0

    def cut(self, name, **values):
        if name not in self.cuts:
            return values
        self.count += 1
        out = {}
        for k, v in values.items():
            r = Signal.like(v, name=f"{name}_{k}") if isinstance(v, Signal) else \
                Signal(v.shape(), name=f"{name}_{k}")
            self.m.d.sync += r.eq(v)
            out[k] = r
        return out


def _increment(value, inc):
    """``value + inc`` (``inc`` one bit, the carry out dropped) as a log-depth prefix of
    ANDs: bit i flips when ``inc`` and every bit below it are set."""
    n = len(value)
    ones = [value[i] for i in range(n)]     # ones[i]: value[j] set for all j in span
    prefix = list(ones)                      # prefix[i] = AND of value[0..i]
    span = 1
    while span < n:
        prefix = [prefix[i] & prefix[i - span] if i >= span else prefix[i]
                  for i in range(n)]
        span *= 2
    carries = [inc] + [inc & prefix[i] for i in range(n - 1)]
    return Cat(*(value[i] ^ carries[i] for i in range(n)))


def _round_binary32(m, mag, exp0, prefix, *, t_max=None, stages=None, carry=None):
    """Round ``mag * 2**exp0`` to a binary32 magnitude (RNE, subnormals).

    ``mag`` is an unsigned integer (not zero: the caller handles zero), ``exp0`` a signed
    expression.  ``t_max`` is an upper bound of ``-126 - exp0`` when the caller knows
    one (it narrows the shifter).  Returns ``(bits, overflow, carry)``: the 31-bit
    magnitude pattern, valid when ``overflow`` is 0, whether the rounded value is at
    least 2**128, and the caller's ``carry`` values (a dict) as they are at the output.

    ``stages`` (a :class:`_Stages`) may cut the datapath after the shift-amount
    computation (cut ``"lzd"``), after the shift (cut ``"shift"``) and after the
    rounding increment (cut ``"round"``); ``carry`` values travel through the same cuts.

    The result's LSB exponent is ``q = max(e - 23, -149)`` with ``e`` the exponent of the
    leading one.  The datapath right-shifts ``mag << 23`` by ``s = q - exp0 + 23 >= 0``
    (so that left shifts never occur), keeps 24 bits, rounds to nearest even using the
    next bit and the sticky OR of the rest, and encodes as ``((q + 149) << 23) + sig``:
    that sum is the IEEE pattern for normal and subnormal results alike, and the carry of
    a rounding increment ripples into the exponent field exactly as renormalization would.
    """
    if stages is None:
        stages = _Stages(m, ())
    carry = dict(carry or {})
    width = len(mag)
    p = _leading_one(m, mag, f"{prefix}_msb")
    # s >= p, and s = -126 - exp0 when the result is subnormal.
    t = Signal(signed(len(exp0) + 2), name=f"{prefix}_t")
    m.d.comb += t.eq(_B32_EMIN - exp0)
    normal = Signal(name=f"{prefix}_normal")
    m.d.comb += normal.eq(p >= t)
    # Beyond width + 24 every bit, including the round bit, is shifted out; clamping keeps
    # the barrel shifter's select narrow.  Only reachable when s == t > p.
    s_max = width + 24
    if t_max is not None and t_max <= s_max:
        s_max = max(t_max, width - 1)
    s = Signal(range(s_max + 1), name=f"{prefix}_shift")
    with m.If(normal):
        m.d.comb += s.eq(p)
    with m.Elif(t > s_max):
        m.d.comb += s.eq(s_max)
    with m.Else():
        m.d.comb += s.eq(t)
    # (q + 149) is p + exp0 + 126 for normal results and 0 for subnormal ones.
    biased = Signal(range(width + (1 << (len(exp0) - 1)) - _B32_EMIN), name=f"{prefix}_biased")
    m.d.comb += biased.eq(Mux(normal, p + exp0 - _B32_EMIN, 0))

    v = stages.cut("lzd", mag=mag, s=s, biased=biased, **carry)
    mag, s, biased = v.pop("mag"), v.pop("s"), v.pop("biased")
    carry = v
    # ext2 = mag << 24: 23 bits to make room for the significand, one more for the round bit.
    ext2 = Cat(Const(0, _B32_MBITS + 1), mag)
    shifted = Signal(len(ext2), name=f"{prefix}_shifted")
    m.d.comb += shifted.eq(ext2 >> s)
    low_mask = Signal(len(ext2), name=f"{prefix}_low_mask")
    m.d.comb += low_mask.eq(~(Const(-1, signed(len(ext2) + 1)) << s)[:len(ext2)])
    sticky = (ext2 & low_mask).any()
    sig = shifted[1:_B32_MBITS + 2]
    inc = Signal(name=f"{prefix}_inc")
    m.d.comb += inc.eq(shifted[0] & (sticky | sig[0]))
    # (biased << 23) + sig overlaps in one bit only (the hidden bit): a short add on the
    # exponent field here, the rounding increment after the cut.
    base = Signal(len(biased) + _B32_MBITS + 1, name=f"{prefix}_base")
    m.d.comb += base.eq(Cat(sig[:_B32_MBITS], biased + sig[_B32_MBITS]))

    v = stages.cut("shift", base=base, inc=inc, **carry)
    base, inc = v.pop("base"), v.pop("inc")
    carry = v
    pattern = Signal(len(base), name=f"{prefix}_pattern")
    m.d.comb += pattern.eq(_increment(base, inc))

    v = stages.cut("round", pattern=pattern, **carry)
    pattern = v.pop("pattern")
    overflow = pattern >= BINARY32_INF
    return pattern[:_B32_MAG], overflow, v


# -- block converter -------------------------------------------------------------------------


class BlockConverter(ConfigComponent):
    """Scale an exact block sum by the two E8M0 block scales and round it to binary32.

    ``result = RNE_binary32(sum * 2**(a_scale - 127 + w_scale - 127 + product_lsb_exp))``
    with subnormal results and overflow to +-Inf.  A zero sum gives +0.0; a negative sum
    that rounds to zero gives -0.0.  The canonical NaN ``0x7FC00000`` is produced when
    either scale is the E8M0 NaN code ``0xFF``, when ``nan`` is set, or when both
    ``inf_pos`` and ``inf_neg`` are set; otherwise an Inf flag gives that Inf.

    Latency: combinational.

    Parameters
    ----------
    config : golden.Config
        An MX engine configuration.

    Members
    -------
    sum : In(signed(config.block_acc_bits))
        Exact block sum in units of ``2**config.product_lsb_exp``.
    nan : In(1)
        Some product of the block was NaN.  Ignored (no logic) unless
        ``config.product_has_nan``.
    inf_pos, inf_neg : In(1)
        Some product of the block was +Inf / -Inf.  Ignored (no logic) unless
        ``config.product_has_inf``.
    a_scale, w_scale : In(8)
        E8M0 block scale codes.
    result : Out(32)
        binary32 bit pattern.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``config`` is a plain ``int8`` configuration (it has no block scales).
    """

    area_category = "scale_and_convert"    #: synth.attribution's PE breakdown

    @classmethod
    def validate(cls, config, stages=None):
        super().validate(config)
        if not config.scaled:
            raise ValueError(f"BlockConverter needs an MX configuration, not "
                             f"a_format={config.a_format} with w_format={config.w_format}")
        _check_stages("BlockConverter", stages, CONVERT_CUTS)

    def __init__(self, config, stages=None):
        self._stages = LATENCY["block_convert"] if stages is None else stages
        super().__init__(config, {
            "sum": In(signed(config.block_acc_bits)),
            "nan": In(1), "inf_pos": In(1), "inf_neg": In(1),
            "a_scale": In(config.scale_bits), "w_scale": In(config.scale_bits),
            "result": Out(_B32_BITS),
        })

    @property
    def latency(self):
        """Register stages from the inputs to ``result``."""
        return self._stages

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        st = _Stages(m, CONVERT_CUTS[:self._stages])
        neg = Signal(name="neg")
        m.d.comb += neg.eq(self.sum < 0)
        # |sum| = (sum XOR neg...) + neg, the increment as a log-depth prefix.
        mag = Signal(cfg.block_acc_bits, name="mag")
        m.d.comb += mag.eq(_increment(Mux(neg, ~self.sum, self.sum), neg))
        exp0 = Signal(signed(cfg.block_exp_bits), name="exp0")
        m.d.comb += exp0.eq(self.a_scale + self.w_scale
                            + (cfg.product_lsb_exp - 2 * SCALE_BIAS))
        nan = (self.a_scale == SCALE_NAN) | (self.w_scale == SCALE_NAN)
        if cfg.product_has_nan:
            nan = nan | self.nan
        if cfg.product_has_inf:
            nan = nan | (self.inf_pos & self.inf_neg)
        special = {"neg": neg, "nan": nan, "zero": self.sum == 0}
        if cfg.product_has_inf:
            special.update(inf_pos=self.inf_pos, inf_neg=self.inf_neg)
        v = st.cut("mag", mag=mag, exp0=exp0, **special)
        bits, overflow, v = _round_binary32(m, v.pop("mag"), v.pop("exp0"), "rnd",
                                            stages=st, carry=v)
        assert st.count == self.latency, (st.count, self.latency)

        neg = v["neg"]
        with m.If(v["nan"]):
            m.d.comb += self.result.eq(BINARY32_QNAN)
        if cfg.product_has_inf:
            with m.Elif(v["inf_pos"] | v["inf_neg"]):
                m.d.comb += self.result.eq(Cat(Const(BINARY32_INF, _B32_MAG), v["inf_neg"]))
        with m.Elif(v["zero"]):
            m.d.comb += self.result.eq(0)
        with m.Elif(overflow):
            m.d.comb += self.result.eq(Cat(Const(BINARY32_INF, _B32_MAG), neg))
        with m.Else():
            m.d.comb += self.result.eq(Cat(bits, neg))
        return m


def _check_stages(unit, stages, cuts):
    if stages is None:
        return
    if not isinstance(stages, int) or isinstance(stages, bool) or \
            not 0 <= stages <= len(cuts):
        raise ValueError(f"{unit} stages must be a whole number from 0 to {len(cuts)}, "
                         f"not {stages!r}")


# -- binary32 adder --------------------------------------------------------------------------


class Float32Adder(wiring.Component):
    """IEEE 754 binary32 addition, round to nearest even, with subnormals.

    No flush to zero; any NaN operand or Inf + (-Inf) gives the canonical NaN
    ``0x7FC00000``; an exact zero sum of non-zero operands is +0, and -0 + -0 = -0;
    overflow gives +-Inf.

    The operands are ordered by magnitude, the smaller one is aligned with guard, round
    and sticky bits, added or subtracted, and the 28-bit result goes through the same
    normalize/round/encode datapath as :class:`BlockConverter`.

    Latency: ``stages`` cycles (registers at the first ``stages`` of :data:`ADD_CUTS`);
    ``sum`` is combinational from the last of them, so the caller's register closes the
    last stage.  One addition per cycle; a loop-carried accumulator must wait
    ``stages + 1`` cycles for its previous sum.

    Parameters
    ----------
    stages : int or None
        Register stages, 0 to ``len(ADD_CUTS)`` (default
        ``golden.latency.LATENCY["f32_add"]``).

    Members
    -------
    a, b : In(32)
        binary32 bit patterns.
    sum : Out(32)
        binary32 bit pattern of ``a + b``.
    """

    area_category = "accumulators"    #: synth.attribution's PE breakdown

    def __init__(self, stages=None):
        _check_stages("Float32Adder", stages, ADD_CUTS)
        self._stages = LATENCY["f32_add"] if stages is None else stages
        super().__init__({"a": In(_B32_BITS), "b": In(_B32_BITS), "sum": Out(_B32_BITS)})

    @property
    def latency(self):
        """Register stages from ``a``/``b`` to ``sum``."""
        return self._stages

    def elaborate(self, platform):
        m = Module()
        st = _Stages(m, ADD_CUTS[:self._stages])
        # Order by magnitude: for binary32 the 31-bit pattern compares like the value.
        # Every comparison and difference here is a prefix adder on a and b themselves,
        # in parallel with the ordering, not after it (a Yosys ``>=`` or ``-`` is a ripple
        # chain, and an exponent difference after the swap mux was the stage's path).
        a_mag, b_mag = self.a[:_B32_MAG], self.b[:_B32_MAG]
        # a - b on 32 bits: its sign bit is clear exactly when |a| >= |b|.
        a_big = Signal(name="a_big")
        m.d.comb += a_big.eq(~prefix_add(a_mag, ~Cat(b_mag, Const(0, 1)), _B32_MAG + 1,
                                         carry_in=1, m=m)[_B32_MAG])
        x = Signal(_B32_BITS, name="x")
        y = Signal(_B32_BITS, name="y")
        m.d.comb += [x.eq(Mux(a_big, self.a, self.b)), y.eq(Mux(a_big, self.b, self.a))]

        def unpack(v, name):
            v = binary32_layout(v)
            exp, man = v.exponent, v.mantissa
            sig = Signal(_B32_MBITS + 1, name=f"{name}_sig")
            eff_exp = Signal(_B32_EBITS, name=f"{name}_exp")  # subnormals share exponent 1
            m.d.comb += [sig.eq(Cat(man, exp != 0)), eff_exp.eq(Mux(exp != 0, exp, 1))]
            is_nan = (exp == _B32_EXP_ONES) & (man != 0)
            is_inf = (exp == _B32_EXP_ONES) & (man == 0)
            return sig, eff_exp, is_nan, is_inf

        sig_x, exp_x, _, _ = unpack(x, "x")
        sig_y, _, _, _ = unpack(y, "y")
        _, exp_a, nan_a, inf_a = unpack(self.a, "a")
        _, exp_b, nan_b, inf_b = unpack(self.b, "b")
        sign_x, sign_y = binary32_layout(x).sign, binary32_layout(y).sign
        sign_a, sign_b = binary32_layout(self.a).sign, binary32_layout(self.b).sign

        # Align y: three extra bits (guard, round, sticky).  Anything shifted past them
        # only matters through the sticky bit, and 27 positions shift out everything.
        grs = 3
        wide = _B32_MBITS + 1 + grs

        def shift_amount(big, small, name):
            # big - small (>= 0 whenever this one is selected), clamped to ``wide``.
            diff = Signal(_B32_EBITS + 1, name=f"{name}_diff")
            m.d.comb += diff.eq(prefix_add(big, ~Cat(small, Const(0, 1)), _B32_EBITS + 1,
                                           carry_in=1, m=m))
            return Mux(diff > wide, wide, diff)

        d = Signal(range(wide + 1), name="align")
        m.d.comb += d.eq(Mux(a_big, shift_amount(exp_a, exp_b, "ab"),
                             shift_amount(exp_b, exp_a, "ba")))
        # NaN and Inf are symmetric in a and b: when either is Inf and no NaN is, the
        # larger operand x is an Inf.
        special = {"nan": nan_a | nan_b | (inf_a & inf_b & (sign_a ^ sign_b)),
                   "inf": inf_a | inf_b, "sign_x": sign_x, "sign_y": sign_y}
        v = st.cut("align", sig_x=sig_x, sig_y=sig_y, exp_x=exp_x, d=d, **special)
        sig_x, sig_y, exp_x, d = v.pop("sig_x"), v.pop("sig_y"), v.pop("exp_x"), v.pop("d")
        special = v
        y_ext = Signal(2 * wide, name="y_ext")
        m.d.comb += y_ext.eq(Cat(Const(0, wide + grs), sig_y) >> d)
        # The bits shifted out fold into the sticky (lowest) bit of the aligned operand.
        y_al = Signal(wide, name="y_al")
        m.d.comb += y_al.eq(Cat(y_ext[wide] | y_ext[:wide].any(), y_ext[wide + 1:]))
        v = st.cut("yal", y_al=y_al, sig_x=sig_x, exp_x=exp_x, **special)
        y_al, sig_x, exp_x = v.pop("y_al"), v.pop("sig_x"), v.pop("exp_x")
        special = v
        x_al = Cat(Const(0, grs), sig_x)

        total = Signal(wide + 1, name="total")
        sub = Signal(name="sub")
        m.d.comb += sub.eq(special["sign_x"] ^ special["sign_y"])
        # x_al >= y_al, so x_al - y_al = x_al + ~y_al + 1 never goes below zero.
        y_ext = Cat(y_al, Const(0, 1))
        m.d.comb += total.eq(prefix_add(x_al, Mux(sub, ~y_ext, y_ext), wide + 1,
                                        carry_in=sub, m=m))
        # exp_x - 153 lies in [-152, 102]: the exponent field width plus a sign bit and
        # one bit of margin.
        exp0 = Signal(signed(_B32_EBITS + 2), name="exp0")
        m.d.comb += exp0.eq(exp_x - (_B32_BIAS + _B32_MBITS + grs))
        # The sum is zero when the operands cancel or are both zero: compared, not read
        # off the adder's output.
        special["zero"] = Mux(sub, x_al == y_al, (sig_x == 0) & (y_al == 0))
        v = st.cut("add", total=total, exp0=exp0, **special)
        total, exp0 = v.pop("total"), v.pop("exp0")
        # exp_x >= 1, so -126 - exp0 <= 26: the rounding shift never exceeds 27.
        bits, overflow, v = _round_binary32(
            m, total, exp0, "rnd", t_max=_B32_BIAS + _B32_MBITS + grs + _B32_EMIN - 1,
            stages=st, carry=v)
        assert st.count == self.latency, (st.count, self.latency)

        sign_x = v["sign_x"]
        with m.If(v["nan"]):
            m.d.comb += self.sum.eq(BINARY32_QNAN)
        with m.Elif(v["inf"]):
            # |x| >= |y|, so an Inf operand is always x.
            m.d.comb += self.sum.eq(Cat(Const(BINARY32_INF, _B32_MAG), sign_x))
        with m.Elif(v["zero"]):
            # Exact zero: -0 only for (-0) + (-0) under round to nearest.
            m.d.comb += self.sum.eq(Cat(Const(0, _B32_MAG), sign_x & v["sign_y"]))
        with m.Elif(overflow):
            m.d.comb += self.sum.eq(Cat(Const(BINARY32_INF, _B32_MAG), sign_x))
        with m.Else():
            m.d.comb += self.sum.eq(Cat(bits, sign_x))
        return m
