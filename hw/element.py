"""Element codes as Amaranth data: the layout and view of an MX element (and of binary32),
and the decoder unit built on them.

A code is ``(-1)**neg * sig * 2**(shift + fmt.lsb_exp)`` (``golden.formats.decode_fields``);
the view's methods return exactly those fields as expressions.
"""

from amaranth.hdl import Cat, Const, Module, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import BINARY32, get_format

__all__ = ["ElementLayout", "ElementView", "ElementDecoder", "binary32_layout"]



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


#: binary32 fields (``mantissa``, ``exponent``, ``sign``), from :data:`golden.formats.BINARY32`.
binary32_layout = ElementLayout(BINARY32)


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

    area_category = "multipliers"    #: synth.attribution's PE breakdown

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
