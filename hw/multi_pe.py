"""The shared processing element of a unified (run-time reconfigurable) engine.

A unified config (``config.unified``) lists two or more modes; every mode fills the same
``config.mode_slots`` 8-bit-class multiplier slots each cycle.  One slot computes one
product of two 8-bit elements, or splits to compute two products of 4-bit elements, so
for ``mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p`` two slots compute two E4M3
products (4 K positions per cycle), four dense E2M1 products (4 K positions) or four
pair-sparse E2M1 products (8 K positions).  Per slot:

- :class:`ByteSelect` (shared by all modes) picks the byte of the activation group that
  the slot's index names: an 8-bit value, or a pair of 4-bit values; a dense mode uses
  byte s for slot s.
- :class:`SplitMultiplier` multiplies the significands: a ``w x w`` array of four
  ``w/2``-bit partial products whose cross terms are masked in split mode, giving two
  products in disjoint bit fields.
- the exponent path per product (element decoders of each format, a shifter per
  product) places each product in the units of ``config.datapath``, the mode with the
  finest product unit, so one block accumulator, one converter and one binary32
  accumulator (:meth:`hw.pe.PE._mx_pipeline`) serve every mode.

The mode is an input (shape ``config.mode_enum``) that must be valid in the cycle of the
group it applies to; only the product stage reads it, so consecutive tiles may use
different modes with no bubble.
"""

from amaranth import Module, Mux, Signal, Cat, Const, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import get_format
from golden.latency import LATENCY
from . import units
from .component import ConfigComponent
from .pe import (PE, ModuleReference, a_group_layout, control_layout, delayed, flag_names,
                 w_group_layout)

__all__ = ["ByteSelect", "SplitMultiplier", "MultiSlot", "MultiPE", "MultiPEInstance",
           "multi_pe_signature"]


def _check_unified(cls, config):
    if not config.unified:
        raise ValueError(f"{cls.__name__} needs a config with several modes, not "
                         f"{config.name}")


class _UnifiedComponent(ConfigComponent):
    @classmethod
    def validate(cls, config, *args, **kwargs):
        super().validate(config)
        _check_unified(cls, config)


def _mode_cases(m, mode_signal, config):
    """Yield ``(index, mode)`` inside an ``m.Switch`` on the mode input, one case per
    mode; an out-of-range value runs as mode 0 (the ``Default``)."""
    enum = config.mode_enum
    with m.Switch(mode_signal):
        for i, mode in list(enumerate(config.modes))[1:]:
            with m.Case(enum(i)):
                yield i, mode
        with m.Default():
            yield 0, config.modes[0]


class ByteSelect(_UnifiedComponent):
    """Pick, for each slot, the byte of the activation group its index names.

    Latency: combinational.

    Members
    -------
    group : In(ArrayLayout(unsigned(8), config.mode_a_bytes))
        The activation group as bytes (``golden.pack`` packs every mode into them).
    index : In(ArrayLayout(unsigned(config.mode_index_bits), config.mode_slots))
        The byte of each slot (absent when every mode is dense).
    selected : Out(ArrayLayout(unsigned(8), config.mode_slots))
        ``group[index[s]]``.
    """

    area_category = "sparse_select"    #: synth.attribution's PE breakdown

    def __init__(self, config):
        ports = {"group": In(data.ArrayLayout(unsigned(8), config.mode_a_bytes))}
        if config.mode_index_bits:
            ports["index"] = In(data.ArrayLayout(unsigned(config.mode_index_bits),
                                                 config.mode_slots))
        ports["selected"] = Out(data.ArrayLayout(unsigned(8), config.mode_slots))
        super().__init__(config, ports)

    def elaborate(self, platform):
        m = Module()
        for s in range(self._config.mode_slots):
            if self._config.mode_index_bits:
                m.d.comb += self.selected[s].eq(self.group[self.index[s]])
            else:
                m.d.comb += self.selected[s].eq(self.group[s])
        return m


class SplitMultiplier(_UnifiedComponent):
    """Precision-scalable significand multiplier: one ``w x w`` product, or two
    ``w/2 x w/2`` products side by side (``w = config.mode_sig_bits``).

    With ``x = x1 * 2**h + x0`` and ``y = y1 * 2**h + y0`` (``h = w/2``),
    ``x*y = x1*y1 << 2h + (x1*y0 + x0*y1) << h + x0*y0``; in split mode the cross terms
    are masked, so ``product = x1*y1 << 2h + x0*y0`` holds the two products in bit fields
    ``[2h, 4h)`` and ``[0, 2h)``.

    Latency: combinational.

    Members
    -------
    x, y : In(w)
    split : In(1)
    product : Out(2*w)
    """

    area_category = "multipliers"    #: synth.attribution's PE breakdown

    def __init__(self, config):
        w = config.mode_sig_bits
        super().__init__(config, {"x": In(w), "y": In(w), "split": In(1),
                                  "product": Out(2 * w)})

    def elaborate(self, platform):
        h = self._config.mode_sig_bits // 2
        m = Module()
        x0, x1 = self.x[:h], self.x[h:]
        y0, y1 = self.y[:h], self.y[h:]
        cross = Mux(self.split, 0, x1 * y0 + x0 * y1)
        m.d.comb += self.product.eq((x1 * y1 << 2 * h) + (cross << h) + x0 * y0)
        return m


def _kinds(config):
    """The distinct format pairs of the modes, in mode order, and each mode's pair."""
    kinds, of_mode = [], []
    for mode in config.modes:
        key = (mode.a_format, mode.w_format)
        if key not in kinds:
            kinds.append(key)
        of_mode.append(kinds.index(key))
    return kinds, of_mode


class MultiSlot(_UnifiedComponent):
    """One shared multiplier slot: decoders, the split significand multiplier and the
    exponent path, for every mode.

    Latency: combinational, with no adder and no negation: the slot's products leave it
    as two terms in sign and magnitude, and ``(-1)**big_neg * big + (-1)**small_neg *
    small`` is the slot's exact result.  The shared PE registers them (``prod{s}_*``,
    ``neg{s}_*``), complements a negative magnitude (one XOR) and adds the terms in its
    block accumulator's carry-save tree, with the signs as the complements' +1s (as the
    fixed PE's :class:`hw.units.Multiplier` ``complement`` products): in the
    ``mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p`` engine the slot's stage is 32.8 FO4
    in OSU018 and 31.8 in ASAP7 (54.5 in OSU018 when it negated and added the two
    products itself; docs/timing.md).

    Members
    -------
    a, w : In(8)
        The selected activation byte and the slot's weight byte: one 8-bit code, or two
        4-bit codes (the lower K position in the low nibble).
    mode : In(config.mode_enum)
    big : Out(config.mode_slot_bits - 1)
        The magnitude of the first product (an 8-bit pair's only one; a 4-bit pair's
        high nibbles) in units of ``2**config.datapath.product_lsb_exp``.
    small : Out(config.mode_slot_bits - 1)
        Likewise a 4-bit pair's second product (low nibbles); 0 in an 8-bit mode.
    big_neg, small_neg : Out(1)
        The sign of each product.  The slot's exact result is 0 when a flag is set.
    nan, inf_pos, inf_neg : Out(1)
        The flags of ``hw.pe.flag_names(config.datapath)`` (only those): a product of
        the slot is NaN, +Inf, -Inf (as :class:`hw.units.Multiplier`).
    """

    area_category = "multipliers"    #: synth.attribution's PE breakdown

    def __init__(self, config):
        ports = {"a": In(8), "w": In(8), "mode": In(config.mode_enum),
                 "big": Out(config.mode_slot_bits - 1), "big_neg": Out(1),
                 "small": Out(config.mode_slot_bits - 1), "small_neg": Out(1)}
        ports.update({k: Out(1) for k in flag_names(config.datapath)})
        super().__init__(config, ports)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        kinds, of_mode = _kinds(cfg)
        w_sig, h = cfg.mode_sig_bits, cfg.mode_sig_bits // 2
        m.submodules.mul = mul = SplitMultiplier(cfg)
        flags = flag_names(cfg.datapath)
        decoders = {}

        def decoder(side, fmt, part):
            """The decoder of byte ``side`` (a or w) as ``fmt``; ``part`` 0/1 is the
            low/high nibble of a 4-bit format, None the whole byte."""
            key = (side, fmt.name, part)
            if key not in decoders:
                dec = decoders[key] = units.ElementDecoder(fmt)
                m.submodules[f"dec_{side}_{fmt.width_label}" + (
                    "" if part is None else f"_{part}")] = dec
                byte = getattr(self, side)
                m.d.comb += dec.code.eq(byte if part is None else byte[4 * part:4 * part + 4])
            return decoders[key]

        # Per format pair: the multiplier operands, then the products.  The first (an
        # 8-bit pair's only) product of every pair goes through one shared shifter,
        # ``big``; a 4-bit pair's second product has a small path of its own, ``small``
        # (the PE complements and adds the two, with their signs).
        slot_bits = cfg.mode_slot_bits
        x_of, y_of, big_of, small_of, kind_flags = [], [], [], [], []
        for k, (a_name, w_name) in enumerate(kinds):
            a_fmt, w_fmt = get_format(a_name), get_format(w_name)
            first = cfg.modes[of_mode.index(k)]
            shift0 = cfg.mode_product_shift(first)
            narrow = a_fmt.bits == 4
            parts = (1, 0) if narrow else (None,)
            pairs = [(decoder("a", a_fmt, p), decoder("w", w_fmt, p)) for p in parts]
            if narrow:
                hi, lo = pairs
                x_of.append(Cat(lo[0].sig, Const(0, h - a_fmt.sig_bits), hi[0].sig))
                y_of.append(Cat(lo[1].sig, Const(0, h - w_fmt.sig_bits), hi[1].sig))
                fields = [mul.product[2 * h:4 * h], mul.product[:2 * h]]
            else:
                x_of.append(pairs[0][0].sig)
                y_of.append(pairs[0][1].sig)
                fields = [mul.product]
            kflags = {f: [] for f in flags}
            for n, ((da, dw), field) in enumerate(zip(pairs, fields)):
                shifts = [d.shift for d in (da, dw) if d.fmt.shift_bits]
                amount = sum(shifts[1:], shifts[0]) if shifts else Const(0, 1)
                neg = da.neg ^ dw.neg
                if n == 0:
                    big_of.append((field, amount + shift0, neg))
                else:
                    # In the mode's own units; the shift into the datapath's is wiring.
                    mag = (field << amount)[:cfg.mode(first).product_bits - 1]
                    small_of.append((mag << shift0, neg))
                zero_a = (da.sig == 0) & ~da.nan & ~da.inf
                zero_w = (dw.sig == 0) & ~dw.nan & ~dw.inf
                nan = da.nan | dw.nan | (da.inf & zero_w) | (dw.inf & zero_a)
                inf = (da.inf | dw.inf) & ~nan
                got = {"nan": nan, "inf_pos": inf & ~neg, "inf_neg": inf & neg}
                for f in flags:
                    kflags[f].append(got[f])
            if not narrow:
                small_of.append(None)
            kind_flags.append({f: (kflags[f][0] if len(kflags[f]) == 1
                                   else kflags[f][0] | kflags[f][1]) for f in flags})

        big_in = Signal(2 * w_sig, name="big_in")
        big_amount = Signal(range(max(
            cfg.mode_product_shift(cfg.modes[of_mode.index(k)])
            + get_format(kinds[k][0]).max_shift + get_format(kinds[k][1]).max_shift
            for k in range(len(kinds))) + 1), name="big_amount")
        big_neg = Signal(name="big_neg")
        small_mag = Signal(slot_bits - 1, name="small_mag")
        small_neg = Signal(name="small_neg")
        mag = Signal(slot_bits - 1, name="big_mag")
        m.d.comb += mag.eq(big_in << big_amount)
        # Sign and magnitude, no adds and no negation: the PE complements the registered
        # magnitudes and its block accumulator adds the signs as the complements' +1s.
        m.d.comb += [self.big.eq(mag), self.big_neg.eq(big_neg),
                     self.small.eq(small_mag), self.small_neg.eq(small_neg)]

        # The mode picks a format pair (modes of one pair share its whole datapath); the
        # pair picks the multiplier operands, the split, the shifter input and the flags.
        kind = Signal(range(len(kinds)), name="kind")
        for i, _ in _mode_cases(m, self.mode, cfg):
            m.d.comb += kind.eq(of_mode[i])
        with m.Switch(kind):
            for k in range(len(kinds)):
                with (m.Case(k) if k < len(kinds) - 1 else m.Default()):
                    narrow = get_format(kinds[k][0]).bits == 4
                    field, amount, neg = big_of[k]
                    m.d.comb += [mul.x.eq(x_of[k]), mul.y.eq(y_of[k]), mul.split.eq(narrow),
                                 big_in.eq(field), big_amount.eq(amount), big_neg.eq(neg)]
                    if small_of[k] is not None:
                        m.d.comb += [small_mag.eq(small_of[k][0]),
                                     small_neg.eq(small_of[k][1])]
                    m.d.comb += [getattr(self, f).eq(kind_flags[k][f]) for f in flags]
        return m


def multi_pe_signature(config):
    """The shared PE's ports (:class:`MultiPE`, :class:`MultiPEInstance`)."""
    return wiring.Signature({
        "a": In(a_group_layout(config)),
        "w": In(w_group_layout(config)),
        "mode": In(config.mode_enum),
        "ctl": In(control_layout),
        "a_scale": In(config.scale_bits),
        "w_scale": In(config.scale_bits),
        "result": Out(config.acc_bits),
        "result_valid": Out(1),
    })


class MultiPE(PE):
    """Processing element of a unified engine: the byte select and ``mode_slots`` shared
    slots, then the block accumulator, converter and binary32 accumulator of
    :class:`hw.pe.PE`, built once for ``config.datapath``.

    Parameters
    ----------
    config : golden.Config
        A unified config (``config.unified``).

    Members
    -------
    a : In(a_group_layout(config))
        Activation group: ``config.mode_a_bytes`` bytes.
    w : In(w_group_layout(config))
        ``config.mode_slots`` weight slots (a byte and its byte index).
    mode : In(config.mode_enum)
        The mode of the group on ``a`` and ``w`` (read in the same cycle).
    a_scale, w_scale, ctl, result, result_valid
        As :class:`hw.pe.PE`.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``config`` has fewer than two modes.

    Latency and throughput as :class:`hw.pe.PE`: one group per cycle in every mode,
    ``result_valid`` ``config.pe_latency`` cycles after the tile's last group.
    ``config`` is the unified config; the accumulators' config is ``config.datapath``.
    """

    @classmethod
    def validate(cls, config, *args, **kwargs):
        super().validate(config)
        _check_unified(cls, config)

    def __init__(self, config):
        ConfigComponent.__init__(self, config, multi_pe_signature(config))

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # -- front end (cfg.front_stages, as hw.pe.sparse_products): the byte select
        # (registered when a mode is sparse), then the shared slots (registered); the
        # block accumulator adds the slots' terms directly ---------------------------------
        m.submodules.select = sel = ByteSelect(cfg)
        m.d.comb += sel.group.eq(self.a)
        if cfg.mode_index_bits:
            sparse = Signal()
            for i, mode in _mode_cases(m, self.mode, cfg):
                m.d.comb += sparse.eq(cfg.mode_sparse(mode))
            for s in range(cfg.mode_slots):
                m.d.comb += sel.index[s].eq(Mux(sparse, self.w[s].index, s))
        select = LATENCY["select"] if cfg.selects else 0
        acts = [delayed(m, sel.selected[s], select, f"sel_a{s}")
                for s in range(cfg.mode_slots)]
        values = [delayed(m, self.w[s].value, select, f"sel_w{s}")
                  for s in range(cfg.mode_slots)]
        mode = delayed(m, self.mode, select, "sel_mode")
        # Each slot's two terms (complement form) and their +1s are registered; the
        # block accumulator's carry-save tree adds all of them (hw.pe.PE._mx_pipeline,
        # the +1s as flags["neg"], as the fixed PE's complemented products).
        flags = {k: [] for k in flag_names(cfg.datapath) + ["neg"]}
        terms = []
        for s in range(cfg.mode_slots):
            m.submodules[f"slot{s}"] = slot = MultiSlot(cfg)
            m.d.comb += [slot.a.eq(acts[s]), slot.w.eq(values[s]), slot.mode.eq(mode)]
            for part in ("big", "small"):
                mag = delayed(m, getattr(slot, part), LATENCY["multiply"], f"prod{s}_{part}")
                neg = delayed(m, getattr(slot, f"{part}_neg"), LATENCY["multiply"],
                              f"neg{s}_{part}")
                # The one's complement of a negative magnitude (the sign bit is the
                # complement's), one XOR in front of the carry-save tree.
                ext, term = Signal(cfg.mode_slot_bits), Signal(signed(cfg.mode_slot_bits),
                                                              name=f"term{s}_{part}")
                m.d.comb += [ext.eq(mag), term.eq(Mux(neg, ~ext, ext))]
                terms.append(term)
                flags["neg"].append(neg)
            for k in flag_names(cfg.datapath):
                flags[k].append(delayed(m, getattr(slot, k), LATENCY["multiply"],
                                        f"{k}{s}"))
        front = select + LATENCY["multiply"]
        assert front == cfg.front_stages, (front, cfg.front_stages)
        # The shared back end is the fixed PE's, built for the datapath mode's units with
        # the unified config's stage counts.
        dp = cfg.datapath
        ctl = delayed(m, self.ctl, front, "ctl")
        self._config = dp
        try:
            stages = front + self._mx_pipeline(m, ctl, terms, flags, stages_of=cfg)
        finally:
            self._config = cfg
        assert stages == self.latency, (stages, self.latency)
        return m


class MultiPEInstance(ModuleReference):
    """A reference to a separately emitted :class:`MultiPE` module (the generator's mode,
    as :class:`hw.pe.PEInstance`)."""

    def __init__(self, config, module_name):
        super().__init__(config, module_name, multi_pe_signature(config))
