"""Arithmetic leaf units of the processing element.

Every unit is its own :class:`~amaranth.lib.wiring.Component`, so that Yosys keeps it as
a module and the synthesis report can attribute area to it.  All of them are purely
combinational: the PE (``hw.pe``) places the pipeline registers around them.  Only the
logic a configuration needs is generated: no Inf logic unless a format encodes Inf, no
NaN logic unless a product can be NaN, no multiplexers when the weights are dense.

Element arithmetic follows ``golden.formats.decode_fields``: a code is
``(-1)**neg * sig * 2**(shift + fmt.lsb_exp)``, and the product of two elements is the
integer ``(-1)**(na^nw) * sig_a * sig_w << (shift_a + shift_w)`` in units of
``2**config.product_lsb_exp``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.formats import get_format
from golden.binary32 import CANONICAL_NAN
from golden.quant import SCALE_BIAS, SCALE_NAN

__all__ = ["ConfigComponent", "ElementLayout", "ElementView", "ElementDecoder", "Multiplier",
           "SparseSelect", "BlockConverter", "Float32Adder", "BINARY32_QNAN", "BINARY32_INF"]

#: The canonical quiet NaN every unit emits (sign 0, quiet bit set, payload 0).
BINARY32_QNAN = CANONICAL_NAN
#: +Inf; -Inf is this with bit 31 set.
BINARY32_INF = 0x7F80_0000

# binary32 field geometry (IEEE 754, fixed: not a configuration parameter).
_B32_MBITS = 23
_B32_BIAS = 127
_B32_EMIN = 1 - _B32_BIAS                 # exponent of the smallest normal, -126


class ConfigComponent(wiring.Component):
    """Base of the components built from a :class:`golden.Config`.

    The constructor arguments are checked (:meth:`validate`) in ``__new__``, before
    Amaranth's unused-elaboratable bookkeeping exists, so that a rejected component
    leaves no object behind to warn about at garbage collection.

    Parameters
    ----------
    config : golden.Config
    signature : wiring.Signature or dict
        The component's ports, built from ``config`` by the subclass.

    Members
    -------
    config : golden.Config
        The configuration the component was built from.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config` (the message names the subclass).
    """

    def __new__(cls, config, *args, src_loc_at=0, **kwargs):
        cls.validate(config, *args, **kwargs)
        # One frame up: an unused-component warning points at the caller, not here.
        return super().__new__(cls, config, *args, src_loc_at=1 + src_loc_at, **kwargs)

    @classmethod
    def validate(cls, config, *args, **kwargs):
        """Raise unless the constructor arguments can build this component (called with
        them before the object exists; subclasses extend it)."""
        if not isinstance(config, Config):
            raise TypeError(f"{cls.__name__} needs a golden.Config, not {config!r}")

    def __init__(self, config, signature):
        self._config = config
        super().__init__(signature)

    @property
    def config(self):
        return self._config


# -- element codes ---------------------------------------------------------------------------


class ElementLayout(data.StructLayout):
    """Bit fields of one element code.

    Floating-point formats have ``mantissa``, ``exponent`` and ``sign`` fields (from the
    least significant bit up); integer formats have one signed ``value`` field.  Views of
    this layout are :class:`ElementView` objects.

    Parameters
    ----------
    fmt : str or golden.formats.Format
        The element format.

    Raises
    ------
    TypeError, ValueError
        ``fmt`` is not a format or names no known format.
    """

    def __init__(self, fmt):
        fmt = get_format(fmt)
        self._fmt = fmt
        if fmt.is_fp:
            super().__init__({"mantissa": unsigned(fmt.mbits),
                              "exponent": unsigned(fmt.ebits),
                              "sign": unsigned(1)})
        else:
            super().__init__({"value": signed(fmt.bits)})

    @property
    def fmt(self):
        """The :class:`golden.formats.Format` this layout describes."""
        return self._fmt

    def __call__(self, target):
        return ElementView(self, target)


class ElementView(data.View):
    """A view of an element code that knows how to decode itself.

    Each method returns an Amaranth expression (a constant where the format cannot
    produce the property, so that no logic is generated for it).
    """

    @property
    def fmt(self):
        return self.shape().fmt

    def _exp_all_ones(self):
        return self.exponent == (1 << self.fmt.ebits) - 1

    def is_nan(self):
        """NaN code: E4M3 ``S.1111.111``; E5M2 all-ones exponent with non-zero mantissa."""
        fmt = self.fmt
        if fmt.nan == "ieee":
            return self._exp_all_ones() & (self.mantissa != 0)
        if fmt.nan == "all_ones":
            return self._exp_all_ones() & (self.mantissa == (1 << fmt.mbits) - 1)
        return Const(0, 1)

    def is_inf(self):
        """Inf code (E5M2 ``S.11111.00``)."""
        if self.fmt.inf:
            return self._exp_all_ones() & (self.mantissa == 0)
        return Const(0, 1)

    def is_special(self):
        if not self.fmt.has_specials:
            return Const(0, 1)
        return self.is_nan() | self.is_inf()

    def negative(self):
        """Sign of the element (the sign bit of FP codes, also of zeros and NaNs)."""
        if self.fmt.is_fp:
            return self.sign
        return self.value < 0

    def significand(self):
        """Unsigned significand, ``fmt.sig_bits`` wide; zero for NaN/Inf codes."""
        fmt = self.fmt
        if fmt.is_fp:
            sig = Cat(self.mantissa, self.exponent != 0)
        else:
            # |value| in fmt.bits unsigned bits: the most negative code's magnitude
            # 2**(bits-1) still fits, which is why fmt.sig_bits == fmt.bits.
            sig = Mux(self.value < 0, -self.value, self.value)[:fmt.sig_bits]
        if fmt.has_specials:
            sig = Mux(self.is_special(), 0, sig)
        return sig

    def shift(self):
        """Exponent offset ``max(exp, 1) - 1``, ``fmt.shift_bits`` wide; zero for
        NaN/Inf codes and for integer formats."""
        fmt = self.fmt
        if not fmt.is_fp:
            return Const(0, fmt.shift_bits)
        shift = Mux(self.exponent != 0, self.exponent - 1, 0)[:fmt.shift_bits]
        if fmt.has_specials:
            shift = Mux(self.is_special(), 0, shift)
        return shift


class ElementDecoder(wiring.Component):
    """Split an element code into sign, significand, exponent offset and flags.

    Latency: combinational.

    Parameters
    ----------
    fmt : str or golden.formats.Format
        Element format of ``code``.

    Members
    -------
    code : In(fmt.bits)
        Element code.
    neg : Out(1)
        Sign (also set for negative zero and for NaN codes with the sign bit set).
    sig : Out(fmt.sig_bits)
        Unsigned significand; 0 for NaN/Inf codes.
    shift : Out(fmt.shift_bits)
        Exponent offset ``max(exp, 1) - 1``; 0 for NaN/Inf codes.  Absent when
        ``fmt.shift_bits == 0`` (integer formats).
    nan : Out(1)
        ``code`` is a NaN (constant 0 for formats without NaN).
    inf : Out(1)
        ``code`` is +-Inf (constant 0 for formats without Inf).

    Raises
    ------
    TypeError, ValueError
        ``fmt`` is not a format or names no known format.
    """

    def __init__(self, fmt):
        fmt = get_format(fmt)
        self._fmt = fmt
        ports = {"code": In(fmt.bits), "neg": Out(1), "sig": Out(fmt.sig_bits)}
        if fmt.shift_bits:
            ports["shift"] = Out(fmt.shift_bits)
        ports["nan"] = Out(1)
        ports["inf"] = Out(1)
        super().__init__(ports)

    @property
    def fmt(self):
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        elem = ElementLayout(self._fmt)(self.code)
        m.d.comb += [
            self.neg.eq(elem.negative()),
            self.sig.eq(elem.significand()),
            self.nan.eq(elem.is_nan()),
            self.inf.eq(elem.is_inf()),
        ]
        if self._fmt.shift_bits:
            m.d.comb += self.shift.eq(elem.shift())
        return m


# -- multiplier ------------------------------------------------------------------------------


class Multiplier(ConfigComponent):
    """Exact product of an activation and a weight element.

    For MX configurations each operand goes through an :class:`ElementDecoder`
    (submodules ``dec_a`` and ``dec_w``); the product is the integer
    ``(-1)**(na^nw) * sig_a * sig_w << (shift_a + shift_w)`` in units of
    ``2**config.product_lsb_exp``, which never rounds.  For ``int8`` configurations it is
    a plain signed 8 x 8 multiply and there are no flag ports.

    Latency: combinational.

    Parameters
    ----------
    config : golden.Config
        Engine configuration (``a_format``, ``w_format``).

    Members
    -------
    a : In(config.a_fmt.bits)
        Activation element code.
    w : In(config.w_fmt.bits)
        Weight element code.
    product : Out(signed(config.product_bits))
        Exact product; 0 whenever a flag is set.
    nan : Out(1)
        A NaN operand, or Inf times zero (constant 0 unless ``config.product_has_nan``).
        MX configurations only.
    inf_pos, inf_neg : Out(1)
        The product is +Inf / -Inf (constant 0 unless ``config.product_has_inf``).
        MX configurations only.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    """

    def __init__(self, config):
        ports = {"a": In(config.a_fmt.bits), "w": In(config.w_fmt.bits),
                 "product": Out(signed(config.product_bits))}
        if config.scaled:
            ports.update(nan=Out(1), inf_pos=Out(1), inf_neg=Out(1))
        super().__init__(config, ports)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        if not cfg.scaled:
            m.d.comb += self.product.eq(self.a.as_signed() * self.w.as_signed())
            return m

        m.submodules.dec_a = dec_a = ElementDecoder(cfg.a_fmt)
        m.submodules.dec_w = dec_w = ElementDecoder(cfg.w_fmt)
        m.d.comb += [dec_a.code.eq(self.a), dec_w.code.eq(self.w)]

        mag = dec_a.sig * dec_w.sig
        shifts = [d.shift for d in (dec_a, dec_w) if d.fmt.shift_bits]
        if shifts:
            mag = mag << sum(shifts[1:], shifts[0])
        # The largest magnitude, max_int_a * max_int_w, fits in product_bits - 1 bits, so
        # the bits above are always zero and the slice only trims the shifter's width.
        mag = mag[:cfg.product_bits - 1]
        neg = dec_a.neg ^ dec_w.neg
        m.d.comb += self.product.eq(Mux(neg, -mag, mag))

        if cfg.product_has_inf:
            zero_a = (dec_a.sig == 0) & ~dec_a.nan & ~dec_a.inf
            zero_w = (dec_w.sig == 0) & ~dec_w.nan & ~dec_w.inf
            nan = dec_a.nan | dec_w.nan | (dec_a.inf & zero_w) | (dec_w.inf & zero_a)
            inf = (dec_a.inf | dec_w.inf) & ~nan
            m.d.comb += [self.nan.eq(nan),
                         self.inf_pos.eq(inf & ~neg),
                         self.inf_neg.eq(inf & neg)]
        elif cfg.product_has_nan:
            m.d.comb += self.nan.eq(dec_a.nan | dec_w.nan)
        return m


# -- sparse select ---------------------------------------------------------------------------


class SparseSelect(ConfigComponent):
    """Pick the N activations of a group of M that the stored weight indices name.

    Any index pattern is legal (duplicates, any order).  Dense configurations (N == M)
    have no ``index`` port and ``selected`` is wired straight to ``group``.

    Latency: combinational.

    Parameters
    ----------
    config : golden.Config
        Engine configuration (``sparsity``, ``a_format``).

    Members
    -------
    group : In(ArrayLayout(unsigned(a_bits), M))
        M activation codes (``config.a_group_bits`` bits), element t at bits
        ``[t*a_bits, (t+1)*a_bits)``.
    index : In(ArrayLayout(unsigned(config.index_bits), N))
        N indices, slot s at bits ``[s*index_bits, (s+1)*index_bits)``.  Absent when dense.
    selected : Out(ArrayLayout(unsigned(a_bits), N))
        Slot s holds ``group[index[s]]``, at bits ``[s*a_bits, (s+1)*a_bits)``.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    """

    def __init__(self, config):
        code = unsigned(config.a_fmt.bits)
        ports = {"group": In(data.ArrayLayout(code, config.m_group))}
        if not config.dense:
            ports["index"] = In(data.ArrayLayout(unsigned(config.index_bits), config.n_keep))
        ports["selected"] = Out(data.ArrayLayout(code, config.n_keep))
        super().__init__(config, ports)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        if cfg.dense:
            m.d.comb += self.selected.eq(self.group)
            return m
        for s in range(cfg.n_keep):
            # A dynamic index into an array view is an M-way multiplexer.
            m.d.comb += self.selected[s].eq(self.group[self.index[s]])
        return m


# -- binary32 rounding shared by the converter and the adder ---------------------------------


def _leading_one(m, value, name):
    """Position of the most significant set bit of ``value`` (0 when ``value`` is 0)."""
    pos = Signal(range(max(len(value), 2)), name=name)
    # Later assignments win, so the highest set bit decides.
    for i in range(len(value)):
        with m.If(value[i]):
            m.d.comb += pos.eq(i)
    return pos


def _round_binary32(m, mag, exp0, prefix, *, t_max=None):
    """Round ``mag * 2**exp0`` to a binary32 magnitude (RNE, subnormals).

    ``mag`` is an unsigned integer (not zero: the caller handles zero), ``exp0`` a signed
    expression.  ``t_max`` is an upper bound of ``-126 - exp0`` when the caller knows
    one (it narrows the shifter).  Returns ``(bits, overflow)``: the 31-bit magnitude
    pattern, valid when ``overflow`` is 0, and whether the rounded value is at least
    2**128.

    The result's LSB exponent is ``q = max(e - 23, -149)`` with ``e`` the exponent of the
    leading one.  The datapath right-shifts ``mag << 23`` by ``s = q - exp0 + 23 >= 0``
    (so that left shifts never occur), keeps 24 bits, rounds to nearest even using the
    next bit and the sticky OR of the rest, and encodes as ``((q + 149) << 23) + sig``:
    that sum is the IEEE pattern for normal and subnormal results alike, and the carry of
    a rounding increment ripples into the exponent field exactly as renormalization would.
    """
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

    # ext2 = mag << 24: 23 bits to make room for the significand, one more for the round bit.
    ext2 = Cat(Const(0, _B32_MBITS + 1), mag)
    shifted = Signal(len(ext2), name=f"{prefix}_shifted")
    m.d.comb += shifted.eq(ext2 >> s)
    low_mask = Signal(len(ext2), name=f"{prefix}_low_mask")
    m.d.comb += low_mask.eq(~(Const(-1, signed(len(ext2) + 1)) << s)[:len(ext2)])
    sig = shifted[1:_B32_MBITS + 2]
    round_bit = shifted[0]
    sticky = (ext2 & low_mask).any()
    inc = round_bit & (sticky | sig[0])
    pattern = Signal(len(biased) + _B32_MBITS + 1, name=f"{prefix}_pattern")
    m.d.comb += pattern.eq((biased << _B32_MBITS) + sig + inc)
    overflow = pattern >= BINARY32_INF
    return pattern[:31], overflow


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

    @classmethod
    def validate(cls, config):
        super().validate(config)
        if not config.scaled:
            raise ValueError(f"BlockConverter needs an MX configuration, not "
                             f"a_format={config.a_format} with w_format={config.w_format}")

    def __init__(self, config):
        super().__init__(config, {
            "sum": In(signed(config.block_acc_bits)),
            "nan": In(1), "inf_pos": In(1), "inf_neg": In(1),
            "a_scale": In(config.scale_bits), "w_scale": In(config.scale_bits),
            "result": Out(32),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        neg = self.sum < 0
        mag = Signal(cfg.block_acc_bits, name="mag")
        m.d.comb += mag.eq(Mux(neg, -self.sum, self.sum))
        exp0 = Signal(signed(11), name="exp0")
        m.d.comb += exp0.eq(self.a_scale + self.w_scale
                            + (cfg.product_lsb_exp - 2 * SCALE_BIAS))
        bits, overflow = _round_binary32(m, mag, exp0, "rnd")

        nan = (self.a_scale == SCALE_NAN) | (self.w_scale == SCALE_NAN)
        if cfg.product_has_nan:
            nan = nan | self.nan
        if cfg.product_has_inf:
            nan = nan | (self.inf_pos & self.inf_neg)
        with m.If(nan):
            m.d.comb += self.result.eq(BINARY32_QNAN)
        if cfg.product_has_inf:
            with m.Elif(self.inf_pos | self.inf_neg):
                m.d.comb += self.result.eq(Cat(Const(BINARY32_INF, 31), self.inf_neg))
        with m.Elif(mag == 0):
            m.d.comb += self.result.eq(0)
        with m.Elif(overflow):
            m.d.comb += self.result.eq(Cat(Const(BINARY32_INF, 31), neg))
        with m.Else():
            m.d.comb += self.result.eq(Cat(bits, neg))
        return m


# -- binary32 adder --------------------------------------------------------------------------


class Float32Adder(wiring.Component):
    """IEEE 754 binary32 addition, round to nearest even, with subnormals.

    No flush to zero; any NaN operand or Inf + (-Inf) gives the canonical NaN
    ``0x7FC00000``; an exact zero sum of non-zero operands is +0, and -0 + -0 = -0;
    overflow gives +-Inf.

    The operands are ordered by magnitude, the smaller one is aligned with guard, round
    and sticky bits, added or subtracted, and the 28-bit result goes through the same
    normalize/round/encode datapath as :class:`BlockConverter`.

    Latency: combinational.

    Members
    -------
    a, b : In(32)
        binary32 bit patterns.
    sum : Out(32)
        binary32 bit pattern of ``a + b``.
    """

    def __init__(self):
        super().__init__({"a": In(32), "b": In(32), "sum": Out(32)})

    def elaborate(self, platform):
        m = Module()
        # Order by magnitude: for binary32 the 31-bit pattern compares like the value.
        a_big = self.a[:31] >= self.b[:31]
        x = Signal(32, name="x")
        y = Signal(32, name="y")
        m.d.comb += [x.eq(Mux(a_big, self.a, self.b)), y.eq(Mux(a_big, self.b, self.a))]

        def unpack(v, name):
            exp, man = v[_B32_MBITS:31], v[:_B32_MBITS]
            sig = Signal(_B32_MBITS + 1, name=f"{name}_sig")
            eff_exp = Signal(8, name=f"{name}_exp")  # subnormals share exponent 1
            m.d.comb += [sig.eq(Cat(man, exp != 0)), eff_exp.eq(Mux(exp != 0, exp, 1))]
            is_nan = (exp == 0xFF) & (man != 0)
            is_inf = (exp == 0xFF) & (man == 0)
            return sig, eff_exp, is_nan, is_inf

        sig_x, exp_x, nan_x, inf_x = unpack(x, "x")
        sig_y, exp_y, nan_y, inf_y = unpack(y, "y")
        sign_x, sign_y = x[31], y[31]

        # Align y: three extra bits (guard, round, sticky).  Anything shifted past them
        # only matters through the sticky bit, and 27 positions shift out everything.
        grs = 3
        wide = _B32_MBITS + 1 + grs
        diff = exp_x - exp_y
        d = Signal(range(wide + 1), name="align")
        m.d.comb += d.eq(Mux(diff > wide, wide, diff))
        y_ext = Signal(2 * wide, name="y_ext")
        m.d.comb += y_ext.eq(Cat(Const(0, wide + grs), sig_y) >> d)
        # The bits shifted out fold into the sticky (lowest) bit of the aligned operand.
        y_al = Cat(y_ext[wide] | y_ext[:wide].any(), y_ext[wide + 1:])
        x_al = Cat(Const(0, grs), sig_x)

        total = Signal(wide + 1, name="total")
        with m.If(sign_x ^ sign_y):
            m.d.comb += total.eq(x_al - y_al)
        with m.Else():
            m.d.comb += total.eq(x_al + y_al)
        exp0 = Signal(signed(10), name="exp0")
        m.d.comb += exp0.eq(exp_x - (_B32_BIAS + _B32_MBITS + grs))
        # exp_x >= 1, so -126 - exp0 <= 26: the rounding shift never exceeds 27.
        bits, overflow = _round_binary32(m, total, exp0, "rnd",
                                         t_max=_B32_BIAS + _B32_MBITS + grs + _B32_EMIN - 1)

        with m.If(nan_x | nan_y | (inf_x & inf_y & (sign_x ^ sign_y))):
            m.d.comb += self.sum.eq(BINARY32_QNAN)
        with m.Elif(inf_x):
            # |x| >= |y|, so an Inf operand is always x.
            m.d.comb += self.sum.eq(Cat(Const(BINARY32_INF, 31), sign_x))
        with m.Elif(total == 0):
            # Exact zero: -0 only for (-0) + (-0) under round to nearest.
            m.d.comb += self.sum.eq(Cat(Const(0, 31), sign_x & sign_y))
        with m.Elif(overflow):
            m.d.comb += self.sum.eq(Cat(Const(BINARY32_INF, 31), sign_x))
        with m.Else():
            m.d.comb += self.sum.eq(Cat(bits, sign_x))
        return m
