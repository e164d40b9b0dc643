"""Arithmetic leaf units of the processing element (this module: the multiplier and the
sparse select; it re-exports the element decoder of :mod:`hw.element` and the binary32
units of :mod:`hw.binary32`).

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

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from .binary32 import BINARY32_INF, BINARY32_QNAN, BlockConverter, Float32Adder
from .component import ConfigComponent
from .element import ElementDecoder, ElementLayout, ElementView, binary32_layout

__all__ = ["ConfigComponent", "ElementLayout", "ElementView", "ElementDecoder", "Multiplier",
           "SparseSelect", "BlockConverter", "Float32Adder", "BINARY32_QNAN", "BINARY32_INF",
           "binary32_layout"]


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
    complement : bool
        MX only: leave the negation's ``+1`` to the caller (``product`` is the one's
        complement of a negative product and ``neg`` its sign, so that ``product + neg``
        is the exact product).  The output-stationary PE adds the ``neg`` bits in its
        carry-save accumulator for free, which takes the negation's carry chain (a
        ``product_bits``-wide increment) off the multiplier's stage.

    Members
    -------
    a : In(config.a_fmt.bits)
        Activation element code.
    w : In(config.w_fmt.bits)
        Weight element code.
    product : Out(signed(config.product_bits))
        Exact product (``complement``: minus ``neg``); 0 whenever a flag is set.
    neg : Out(1)
        ``complement`` only: the sign of the product (add it to ``product``).
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

    area_category = "multipliers"    #: synth.attribution's PE breakdown

    @classmethod
    def validate(cls, config, complement=False):
        super().validate(config)
        if complement and not config.scaled:
            raise ValueError("Multiplier complement needs an MX configuration, not "
                             f"a_format={config.a_format} with w_format={config.w_format}")

    def __init__(self, config, complement=False):
        self._complement = complement
        ports = {"a": In(config.a_fmt.bits), "w": In(config.w_fmt.bits),
                 "product": Out(signed(config.product_bits))}
        if config.scaled:
            ports.update(nan=Out(1), inf_pos=Out(1), inf_neg=Out(1))
        if complement:
            ports["neg"] = Out(1)
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
        if self._complement:
            ext = Signal(cfg.product_bits, name="mag")
            m.d.comb += [ext.eq(mag), self.product.eq(Mux(neg, ~ext, ext)),
                         self.neg.eq(neg)]
        else:
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

    area_category = "sparse_select"    #: synth.attribution's PE breakdown

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
