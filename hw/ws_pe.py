"""The weight-stationary PE, its block-end unit and the layouts that flow through the
weight-stationary array (see :mod:`hw.ws`)."""

from amaranth import Module, Signal, Mux, Cat, unsigned, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.latency import LATENCY
from . import units
from .adder import carry_save, multi_add, prefix_add
from .component import categorize, category_signal
from .pe import (ConfigComponent, ModuleReference, a_group_layout, any_of, delayed,
                 flag_names, sparse_products, w_group_layout)

__all__ = ["WSPE", "WSPEInstance", "WSBlockEnd", "ws_control_layout", "ws_psum_layout",
           "ws_state_layout", "ws_load_layout", "ws_pe_signature"]


#: Per-row control that travels right with the activations.
ws_control_layout = data.StructLayout({
    "valid": 1,     # an activation row whose K-group exists is present
    "wsel": 1,      # which of the two weight registers this pass uses
    "bend": 1,      # a block ends below this row: convert and accumulate it
})


def ws_psum_layout(config):
    """The exact partial sum flowing down a column: the exact block partial and its
    special-value flags (MX), or the wrapping int32 sum (int8)."""
    if not config.scaled:
        return data.StructLayout({"acc": signed(config.acc_bits)})
    fields = {"exact": signed(config.block_acc_bits)}
    fields.update({k: 1 for k in flag_names(config)})
    return data.StructLayout(fields)


def ws_state_layout(config):
    """What a column hands from one pass to the next: the binary32 partial (MX), plus
    the exact partial block and flags when blocks span passes; int8: the int32 sum."""
    if not config.scaled:
        return ws_psum_layout(config)
    fields = {"fp": config.acc_bits}
    if config.ws_carry_exact:
        fields.update(ws_psum_layout(config).members)
    return data.StructLayout(fields)


def ws_load_layout(config):
    """The weight-load bus of one column: one K-group's slots for one target row."""
    fields = {
        "valid": 1,
        "row": unsigned(max(1, (config.ws_fold_groups - 1).bit_length())),
        "wsel": 1,
        "w": w_group_layout(config),
    }
    if config.scaled:
        fields["scale"] = config.scale_bits
    return data.StructLayout(fields)


def ws_pe_signature(config):
    """The ports of :class:`WSPE` (shared by :class:`WSPEInstance`)."""
    return wiring.Signature({
        "a": In(a_group_layout(config)),
        "ctl": In(ws_control_layout),
        "ld_en": In(1),
        "ld_sel": In(1),
        "ld_w": In(w_group_layout(config)),
        "psum_in": In(ws_psum_layout(config)),
        "psum_out": Out(ws_psum_layout(config)),
    })


class WSPE(ConfigComponent):
    """Weight-stationary processing element: N stationary weight slots, sparse select,
    N exact multipliers and the exact partial-sum adder.

    Parameters
    ----------
    config : golden.Config

    Members
    -------
    a : In(a_group_layout(config))
        Activation group of this PE's K-group for the activation row passing by.
    ctl : In(ws_control_layout)
        ``valid`` (add this row's products), ``wsel`` (weight register in use).
    ld_en, ld_sel : In(1)
        Write ``ld_w`` into weight register ``ld_sel`` at the end of this cycle.
    ld_w : In(w_group_layout(config))
        Stored weight slots (value and index) of the PE's K-group and column.
    psum_in : In(ws_psum_layout(config))
        Exact partial sum from the PE above.
    psum_out : Out(ws_psum_layout(config))
        ``psum_in`` plus this PE's products (flags ORed), registered.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Latency and throughput: one activation row per cycle; ``psum_out`` holds
    ``psum_in`` of the previous cycle plus the products of the activation group that was
    on ``a`` ``latency`` (``config.ws_pe_latency``: the front end's
    ``config.front_stages``, then the psum register) cycles earlier; ``ctl`` travels
    with ``a``.  A weight register written in cycle t is in use from cycle t+1 (the
    select and multipliers read it in the cycle ``a`` is on the inputs).
    """

    def __init__(self, config):
        super().__init__(config, ws_pe_signature(config))
        categorize(self.psum_out, "accumulators")     # the registered partial sum

    #: Cycles from ``psum_in`` to ``psum_out`` (``golden.latency.LATENCY["ws_pe"]``).
    psum_latency = LATENCY["ws_pe"]

    @property
    def latency(self):
        """Cycles from ``a``/``ctl`` to ``psum_out`` (``config.ws_pe_latency``)."""
        return self._config.ws_pe_latency

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        assert self.psum_latency == 1, "psum_out is the one register stage after psum_in"
        # Two weight registers: the running pass reads one, the next pass loads the other.
        # Values and indices are kept apart so that the area report can count the index
        # registers (the PE's N:M metadata) with the sparse select.
        w = Signal(w_group_layout(cfg), name="w_active")
        self._weight_registers(m, w, "value", cfg.w_fmt.bits, "weight_value",
                               "pipeline_registers")
        if not cfg.dense:
            self._weight_registers(m, w, "index", cfg.index_bits, "weight_meta",
                                   "sparse_select")

        # MX: the multipliers leave the negation's +1 to the psum's carry-save tree
        # (hw.units.Multiplier complement), which takes the product_bits-wide increment
        # off the multiplier stage.
        products, flags = sparse_products(m, cfg, self.a, w, complement=cfg.scaled)
        negs = flags.pop("neg", [])
        names = list(flags)
        valid = delayed(m, self.ctl.valid, cfg.front_stages, "valid")
        assert cfg.front_stages + self.psum_latency == self.latency
        # psum_in plus the valid products (and their +1s): one carry-save tree and a
        # prefix adder.  The valid mask is one AND at the start of this stage, which is
        # shorter than the multiplier's (the registered products come straight in).
        field = "exact" if cfg.scaled else "acc"
        psum_in = getattr(self.psum_in, field)
        width = len(psum_in)
        rows = [psum_in] + [Mux(valid, p, 0) for p in products]
        if negs:
            s_row, c_row = carry_save(rows, width, ones=[valid & n for n in negs], m=m)
            total = prefix_add(s_row, c_row, width, m=m)
        else:
            total = multi_add(rows, width, m=m)
        m.d.sync += getattr(self.psum_out, field).eq(total)
        if not cfg.scaled:
            return m
        for k in names:
            m.d.sync += getattr(self.psum_out, k).eq(
                getattr(self.psum_in, k) | (valid & any_of(flags[k])))
        return m

    def _weight_registers(self, m, w, field, width, name, category):
        """The two registers (``ArrayLayout`` of N ``width``-bit entries, ``name0`` and
        ``name1``, area ``category``) of slot field ``field``: ``ld_w``'s fields load
        into register ``ld_sel``; ``w``'s fields come from the register of the running
        pass."""
        n = self._config.n_keep
        layout = data.ArrayLayout(unsigned(width), n)
        regs = [category_signal(category, layout, name=f"{name}{p}") for p in range(2)]
        loaded = Cat(*(getattr(self.ld_w[s], field) for s in range(n)))
        for p in range(2):
            with m.If(self.ld_en & (self.ld_sel == p)):
                m.d.sync += regs[p].eq(loaded)
        active = layout(Mux(self.ctl.wsel, regs[1], regs[0]))
        m.d.comb += [getattr(w[s], field).eq(active[s]) for s in range(n)]


class WSPEInstance(ModuleReference):
    """A reference to a separately emitted :class:`WSPE` module (see
    :class:`hw.pe.PEInstance`; the generator's mode)."""

    def __init__(self, config, module_name):
        super().__init__(config, module_name, ws_pe_signature(config))


class WSBlockEnd(ConfigComponent):
    """Block-end unit below a weight-stationary row where an MX block ends.

    When ``ctl.bend`` is set, the exact block sum is scaled by the activation row's and
    the weight column's E8M0 scales and rounded once to binary32
    (:class:`hw.units.BlockConverter`), added to the binary32 partial
    (:class:`hw.units.Float32Adder`, partial + term, so terms add in K order), and the
    exact partial and flags restart from zero; otherwise everything passes unchanged.

    Parameters
    ----------
    config : golden.Config
        An MX configuration.

    Members
    -------
    psum_in : In(ws_psum_layout(config))
        Exact partial sum from the PE above (its registered output).
    fp_in : In(32)
        binary32 partial, aligned with ``psum_in``.
    a_scale : In(8)
        E8M0 scale of the activation row's block, aligned with ``psum_in``.
    ctl : In(ws_control_layout)
        ``bend`` and ``wsel`` of the row above, aligned with ``psum_in``.
    ld_en, ld_sel, ld_scale : In
        Write the weight column's E8M0 block scale into scale register ``ld_sel``.
    psum_out : Out(ws_psum_layout(config))
    fp_out : Out(32)

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``config`` is an ``int8`` configuration.

    Latency: ``config.ws_block_end_latency`` cycles (the converter's stages, the term
    register, the adder's stages, the output register); one row per cycle.
    """

    @classmethod
    def validate(cls, config):
        super().validate(config)
        if not config.scaled:
            raise ValueError(f"WSBlockEnd needs an MX configuration, not "
                             f"a_format={config.a_format} with w_format={config.w_format}")

    def __init__(self, config):
        super().__init__(config, {
            "psum_in": In(ws_psum_layout(config)),
            "fp_in": In(config.acc_bits),
            "a_scale": In(config.scale_bits),
            "ctl": In(ws_control_layout),
            "ld_en": In(1),
            "ld_sel": In(1),
            "ld_scale": In(config.scale_bits),
            "psum_out": Out(ws_psum_layout(config)),
            "fp_out": Out(config.acc_bits),
        })

    @property
    def latency(self):
        """Cycles from ``psum_in`` to ``psum_out``/``fp_out``
        (``config.ws_block_end_latency``, ``golden.latency.LATENCY["ws_block_end"]``)."""
        return self._config.ws_block_end_latency

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        names = flag_names(cfg)
        scales = [Signal(cfg.scale_bits, name=f"w_scale{p}") for p in range(2)]
        with m.If(self.ld_en):
            with m.If(self.ld_sel):
                m.d.sync += scales[1].eq(self.ld_scale)
            with m.Else():
                m.d.sync += scales[0].eq(self.ld_scale)

        m.submodules.convert = conv = units.BlockConverter(cfg)
        m.d.comb += [conv.sum.eq(self.psum_in.exact), conv.a_scale.eq(self.a_scale),
                     conv.w_scale.eq(Mux(self.ctl.wsel, scales[1], scales[0]))]
        m.d.comb += [getattr(conv, k).eq(getattr(self.psum_in, k)) for k in names]

        # The converter's stages, then the term register: the rounded block term; the
        # exact partial restarts after a block end.  Everything else travels beside it.
        bend = self.ctl.bend
        psum0 = Signal(ws_psum_layout(cfg), name="psum0")
        m.d.comb += psum0.exact.eq(Mux(bend, 0, self.psum_in.exact))
        m.d.comb += [getattr(psum0, k).eq(~bend & getattr(self.psum_in, k)) for k in names]
        lag = conv.latency
        term = Signal(cfg.acc_bits, name="term")
        fp1 = Signal(cfg.acc_bits, name="fp1")
        en1 = Signal(name="en1")
        psum1 = Signal(ws_psum_layout(cfg), name="psum1")
        m.d.sync += [term.eq(conv.result), fp1.eq(delayed(m, self.fp_in, lag, "fp_in")),
                     en1.eq(delayed(m, bend, lag, "bend")),
                     psum1.eq(delayed(m, psum0, lag, "psum0"))]

        # The adder's stages, then the output register: partial + term (feed-forward).
        m.submodules.add = add = units.Float32Adder()
        m.d.comb += [add.a.eq(fp1), add.b.eq(term)]
        lag = add.latency
        fp2 = delayed(m, fp1, lag, "fp1")
        m.d.sync += [self.fp_out.eq(Mux(delayed(m, en1, lag, "en1"), add.sum, fp2)),
                     self.psum_out.eq(delayed(m, psum1, lag, "psum1"))]
        assert self.latency == 2 + conv.latency + add.latency, \
            "converter stages, term, adder stages, fp_out/psum_out"
        return m
