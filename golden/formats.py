"""Element formats: the one table every other part of nmmx reads.

Each element value is ``(-1)**sign * sig * 2**(shift + lsb_exp)``, where ``sig`` is an
unsigned integer significand, ``shift`` a non-negative exponent offset and ``lsb_exp``
a per-format constant.  The hardware multiplies ``sig`` values, adds ``shift`` values
and accumulates the products as integers in units of ``2**(lsb_exp_a + lsb_exp_w)``;
the golden model uses exactly the same decomposition, so the block sums are integers on
both sides.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["Format", "FORMATS", "BINARY32", "get_format", "format_names"]


@dataclass(frozen=True)
class Format:
    """An element format from the OCP MX v1.0 table (plus nmmx's extensions).

    Parameters
    ----------
    name : str
        Name used by the API, the CLI and the reports, e.g. ``"mxfp4_e2m1"``.
    kind : str
        ``"fp"`` (sign, exponent, mantissa) or ``"int"`` (two's complement).
    bits : int
        Width of one element code.
    ebits, mbits : int
        Exponent and mantissa field widths (``0`` for integer formats).
    bias : int
        Exponent bias (``0`` for integer formats).
    max_value : float
        Largest finite magnitude; the quantizer saturates to it.
    emax_elem : int
        Exponent of the largest power of two in the format (OCP MX v1.0, table 1).
    inf : bool
        The format encodes infinities (``S.11111.00`` for E5M2).
    nan : str
        ``"none"``, ``"all_ones"`` (E4M3: ``S.1111.111``) or ``"ieee"`` (all-ones exponent,
        non-zero mantissa).
    scaled : bool
        Blocks carry an E8M0 shared scale (every MX format); ``False`` for plain ``int8``.
    ml_dtype : str or None
        Name of the matching ``ml_dtypes`` type, used only as an independent test oracle.
    """

    name: str
    kind: str
    bits: int
    ebits: int
    mbits: int
    bias: int
    max_value: float
    emax_elem: int
    inf: bool
    nan: str
    scaled: bool
    ml_dtype: str | None = None

    # -- derived constants (never re-derive these elsewhere) --------------------------

    @property
    def is_fp(self):
        return self.kind == "fp"

    @property
    def emin(self):
        """Unbiased exponent of the smallest normal (FP) value."""
        return 1 - self.bias

    @property
    def lsb_exp(self):
        """Exponent of one unit of ``sig`` when ``shift == 0``."""
        if self.is_fp:
            return self.emin - self.mbits
        if self.scaled:
            return -(self.bits - 2)
        return 0

    @property
    def sig_bits(self):
        """Width of the unsigned significand (the multiplier operand width)."""
        if self.is_fp:
            return self.mbits + 1
        # The most negative code is accepted by decoders, so its magnitude must fit.
        return self.bits

    @property
    def max_shift(self):
        """Largest ``shift`` of a finite value (exponent field of the largest finite,
        minus one)."""
        if not self.is_fp:
            return 0
        top = (1 << self.ebits) - 1
        # E5M2 spends the all-ones exponent on Inf/NaN; E4M3 only spends one code on NaN.
        return (top - 1 if self.nan == "ieee" else top) - 1

    @property
    def shift_bits(self):
        return max(self.max_shift, 0).bit_length()

    @property
    def max_int(self):
        """Largest finite magnitude in units of ``2**lsb_exp`` (the integer that
        ``max_value`` decodes to)."""
        if self.is_fp:
            return int(self.max_value * 2.0 ** -self.lsb_exp)
        return 1 << (self.bits - 1)  # the accepted most-negative code

    @property
    def has_specials(self):
        return self.inf or self.nan != "none"

    @property
    def width_label(self):
        """Compact label used in generated names: ``mxfp4_e2m1`` -> ``mxfp4e2m1``."""
        return self.name.replace("_", "")

    # -- tables ------------------------------------------------------------------------

    @cached_property
    def _fields(self):
        return decode_fields(self, np.arange(1 << self.bits, dtype=np.uint32))

    def decode_table(self):
        """Value of every code, as float64 (NaN and +-Inf where the format has them)."""
        neg, sig, shift, is_nan, is_inf = self._fields
        mag = sig.astype(np.float64) * np.exp2(shift.astype(np.float64) + self.lsb_exp)
        mag = np.where(is_inf, np.inf, mag)
        val = np.where(neg, -mag, mag)
        return np.where(is_nan, np.nan, val)


def decode_fields(fmt, codes):
    """Split element codes into ``(neg, sig, shift, is_nan, is_inf)`` arrays.

    ``sig`` and ``shift`` of NaN/Inf codes are set to zero, so that their products
    contribute nothing to an integer block sum (the flags carry them instead).
    """
    codes = np.asarray(codes).astype(np.int64) & ((1 << fmt.bits) - 1)
    if fmt.is_fp:
        neg = (codes >> (fmt.bits - 1)) & 1
        exp = (codes >> fmt.mbits) & ((1 << fmt.ebits) - 1)
        man = codes & ((1 << fmt.mbits) - 1)
        top = (1 << fmt.ebits) - 1
        if fmt.nan == "ieee":
            is_nan = (exp == top) & (man != 0)
            is_inf = (exp == top) & (man == 0) if fmt.inf else np.zeros_like(is_nan)
        elif fmt.nan == "all_ones":
            is_nan = (exp == top) & (man == (1 << fmt.mbits) - 1)
            is_inf = np.zeros_like(is_nan)
        else:
            is_nan = np.zeros(codes.shape, dtype=bool)
            is_inf = np.zeros(codes.shape, dtype=bool)
        sig = np.where(exp > 0, man | (1 << fmt.mbits), man)
        shift = np.maximum(exp, 1) - 1
        special = is_nan | is_inf
        sig = np.where(special, 0, sig)
        shift = np.where(special, 0, shift)
    else:
        signed = np.where(codes >= (1 << (fmt.bits - 1)), codes - (1 << fmt.bits), codes)
        neg = (signed < 0).astype(np.int64)
        sig = np.abs(signed)
        shift = np.zeros_like(sig)
        is_nan = np.zeros(codes.shape, dtype=bool)
        is_inf = np.zeros(codes.shape, dtype=bool)
    return neg.astype(bool), sig, shift, is_nan, is_inf


def _fp(name, ebits, mbits, bias, max_value, emax_elem, *, inf=False, nan="none", ml=None):
    return Format(name=name, kind="fp", bits=1 + ebits + mbits, ebits=ebits, mbits=mbits,
                  bias=bias, max_value=max_value, emax_elem=emax_elem, inf=inf, nan=nan,
                  scaled=True, ml_dtype=ml)


def _int(name, bits, *, scaled=True):
    max_value = ((1 << (bits - 1)) - 1) * (2.0 ** -(bits - 2) if scaled else 1.0)
    return Format(name=name, kind="int", bits=bits, ebits=0, mbits=0, bias=0,
                  max_value=max_value, emax_elem=0, inf=False, nan="none", scaled=scaled)


#: Every format nmmx knows, in the order reports list them.
FORMATS = {f.name: f for f in [
    _fp("mxfp8_e4m3", 4, 3, 7, 448.0, 8, nan="all_ones", ml="float8_e4m3fn"),
    _fp("mxfp8_e5m2", 5, 2, 15, 57344.0, 15, inf=True, nan="ieee", ml="float8_e5m2"),
    _fp("mxfp6_e2m3", 2, 3, 1, 7.5, 2, ml="float6_e2m3fn"),
    _fp("mxfp6_e3m2", 3, 2, 3, 28.0, 4, ml="float6_e3m2fn"),
    _fp("mxfp4_e2m1", 2, 1, 1, 6.0, 2, ml="float4_e2m1fn"),
    _int("mxint8", 8),
    _int("mxint4", 4),
    _int("mxint2", 2),
    _int("int8", 8, scaled=False),
]}


#: IEEE 754 binary32, the MX engines' output and accumulator format: the one place its
#: field widths and bias live (hw builds its binary32 layout from it).  Not an element
#: format, so not in :data:`FORMATS`.
BINARY32 = Format(name="binary32", kind="fp", bits=32, ebits=8, mbits=23, bias=127,
                  max_value=(2 - 2.0 ** -23) * 2.0 ** 127, emax_elem=127, inf=True,
                  nan="ieee", scaled=False, ml_dtype="float32")


def format_names():
    return list(FORMATS)


def get_format(name):
    """Look a format up by name; ``Format`` objects pass through unchanged."""
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"Element format must be a format name, not {name!r}")
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"Unknown element format {name!r}; choose one of "
                         f"{', '.join(FORMATS)}") from None
