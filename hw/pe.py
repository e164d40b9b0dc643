"""One processing element of the output-stationary array.

The PE owns one output element C[i, j].  Each cycle it takes one group of M activation
codes and the N stored weight slots (value + index) of the same K range, selects the N
activations the indices name, multiplies them exactly and sums them into an exact
fixed-point block accumulator.  At each MX block end the block sum is scaled, rounded
once to binary32 and added into the binary32 output accumulator; an ``int8`` engine
instead accumulates the exact products into an int32 that wraps.
"""

from amaranth import (Value, Module, Instance, ClockSignal, ResetSignal, Signal, Mux, Cat,
                      unsigned, signed)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config
from . import units
from .adder import CarrySelectAdder, carry_save, multi_add, prefix_add
from .component import category_signal
from .units import ConfigComponent
from .word import word_layout

__all__ = ["ConfigComponent", "ModuleReference", "PE", "PEInstance", "a_group_layout",
           "w_group_layout", "control_layout", "any_of", "flag_names", "sparse_products",
           "delayed"]


def delayed(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (``value`` itself for 0)."""
    for i in range(cycles):
        r = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += r.eq(value)
        value = r
    return value


def any_of(bits):
    """OR of a non-empty list of 1-bit values (a balanced tree is left to synthesis)."""
    out = bits[0]
    for b in bits[1:]:
        out = out | b
    return out


def flag_names(config):
    """Special-value flags a product of ``config`` can raise: an E4M3 product can be NaN
    but never Inf, FP6/FP4/INT products are always finite, int8 has none."""
    if not config.scaled:
        return []
    return (["nan"] if config.product_has_nan else []) + (
        ["inf_pos", "inf_neg"] if config.product_has_inf else [])


def sparse_products(m, config, a, w, complement=False):
    """Add the pipelined front end of one PE to ``m``: the sparse select and the N exact
    multipliers, with ``config.front_stages`` register stages.  ``complement``: the
    multipliers leave the negation's ``+1`` to the caller (:class:`hw.units.Multiplier`),
    and ``flags["neg"]`` holds the N registered bits to add.

    The cuts: after the select (sparse configs only), the N selected codes and the N
    weight values are registered; after the multipliers, the N products and their flags
    are.  Everything that travels beside the products
    (control, scales) must be delayed by ``config.front_stages`` (:func:`delayed`).

    Parameters
    ----------
    m : Module
    config : golden.Config
    a : value of a_group_layout(config)
        The group of M activation codes.
    w : value of w_group_layout(config)
        The N stored weight slots; slot s's index names the activation it multiplies.

    Returns
    -------
    products : list of Value
        The N registered exact products (``signed(config.product_bits)``); the caller
        sums them with :func:`hw.adder.multi_add` (a carry-save tree and a prefix
        adder) in its next stage.
    flags : dict
        ``flag_names(config)`` -> list of the N registered multiplier flag bits.
    """
    n = config.n_keep
    stages = 0
    values = [w[s].value for s in range(n)]
    if config.dense:
        acts = [a[s] for s in range(n)]
    else:
        m.submodules.select = sel = units.SparseSelect(config)
        m.d.comb += [sel.group.eq(a), sel.index.eq(Cat(*(w[s].index for s in range(n))))]
        acts = [delayed(m, sel.selected[s], 1, f"sel_a{s}") for s in range(n)]
        values = [delayed(m, values[s], 1, f"sel_w{s}") for s in range(n)]
        stages += 1
    products = []
    flags = {k: [] for k in flag_names(config) + (["neg"] if complement else [])}
    for s in range(n):
        mul = units.Multiplier(config, complement=complement)
        m.submodules[f"mul{s}"] = mul
        m.d.comb += [mul.a.eq(acts[s]), mul.w.eq(values[s])]
        products.append(delayed(m, mul.product, 1, f"prod{s}"))
        for k in flags:
            flags[k].append(delayed(m, getattr(mul, k), 1, f"{k}{s}"))
    stages += 1
    assert stages == config.front_stages, (stages, config.front_stages)
    return products, flags


class SplitAccumulator:
    """A loop-carried wrapping accumulator ``acc = (restart ? 0 : acc) + value`` split
    into a low and a high half with a registered carry (``stages = 2``), built into the
    caller's module.

    Why split rather than cut the adder: the loop-carried add must finish in one cycle
    to keep one add per cycle, so a register inside the adder would break the loop.  A
    carry-select adder shortens it but still spans the full width.  Splitting the
    accumulator keeps each half's loop one cycle long and half as wide: in the cycle a
    term arrives the low half adds the term's low bits and registers its carry out
    together with the term's high bits; the high half adds them one cycle later.  The
    sum is exact modulo ``2**width`` (two's complement wraps as before).

    Parameters
    ----------
    m : Module
    width : int
        Accumulator width.
    value : Value
        The term, sign-extended to ``width`` (signed values are).
    restart : Value
        Start from zero with this term.
    enable : Value
        A term is present (otherwise both halves hold).
    name : str
        Prefix of the registers.
    category : str
        Area category of the accumulator halves.

    Members
    -------
    total : Value
        ``width`` bits: the accumulator after the term that arrived ``stages`` cycles
        earlier (registered), unchanged while no term arrives.
    sum_now : Value
        Combinational: the same sum one cycle earlier (``stages - 1`` cycles after the
        term), for a caller that registers it itself (its result register).
    """

    stages = 2

    def __init__(self, m, width, value, restart, enable, name, category="accumulators"):
        lo_w = (width + 1) // 2
        hi_w = width - lo_w
        value = value.as_signed() if value.shape().signed else value
        ext = Signal(signed(width), name=f"{name}_term")
        m.d.comb += ext.eq(value)
        lo = category_signal(category, lo_w, name=f"{name}_lo")
        hi = category_signal(category, hi_w, name=f"{name}_hi")
        carry, restart1, enable1 = (Signal(name=f"{name}_{k}")
                                    for k in ("carry", "restart1", "enable1"))
        hi_term = Signal(hi_w, name=f"{name}_hi_term")
        lo_sum = Signal(lo_w + 1, name=f"{name}_lo_sum")
        m.d.comb += lo_sum.eq(prefix_add(Mux(restart, 0, lo), ext[:lo_w], lo_w + 1, m=m))
        # An idle cycle passes zeros to the high half, so sum_now holds as total does.
        m.d.sync += [carry.eq(enable & lo_sum[lo_w]), restart1.eq(enable & restart),
                     enable1.eq(enable), hi_term.eq(Mux(enable, ext[lo_w:], 0))]
        with m.If(enable):
            m.d.sync += lo.eq(lo_sum[:lo_w])
        hi_sum = Signal(hi_w, name=f"{name}_hi_sum")
        m.d.comb += hi_sum.eq(prefix_add(Mux(restart1, 0, hi), hi_term, hi_w, carry, m=m))
        lo1 = Signal(lo_w, name=f"{name}_lo1")
        with m.If(enable1):
            m.d.sync += [hi.eq(hi_sum), lo1.eq(lo)]
        self.sum_now = Cat(lo, hi_sum)
        self.total = Cat(lo1, hi)


def a_group_layout(config):
    """One activation group: M element codes (the ``a_data`` word, :mod:`hw.word`)."""
    return word_layout(config, "a_data")


def w_group_layout(config):
    """The N stored weight slots of one group (the ``w_data`` word, :mod:`hw.word`)."""
    return word_layout(config, "w_data")


#: Per-group control that travels with the activations through the array.
control_layout = data.StructLayout({
    "valid": 1,     # a group is present this cycle
    "tfirst": 1,    # first group of an output tile: restart the output accumulator
    "bfirst": 1,    # first group of an MX block: restart the block accumulator
    "blast": 1,     # last group of an MX block: convert and accumulate the block
    "tlast": 1,     # last group of the tile: publish the result
})


def pe_signature(config):
    """The PE's ports (see :class:`PE`); shared by :class:`PE` and :class:`PEInstance`."""
    members = {
        "a": In(a_group_layout(config)),
        "w": In(w_group_layout(config)),
        "ctl": In(control_layout),
        "result": Out(config.acc_bits),
        "result_valid": Out(1),
    }
    if config.scaled:
        members["a_scale"] = In(config.scale_bits)
        members["w_scale"] = In(config.scale_bits)
    return wiring.Signature(members)


class PE(ConfigComponent):
    """Processing element: sparse select, N exact multipliers and the accumulators.

    Parameters
    ----------
    config : golden.Config
        Engine configuration; the PE builds only the logic the config needs (no select
        muxes when dense, no scale, converter or float logic for ``int8``).

    Members
    -------
    a : In(a_group_layout(config))
        Activation group.
    w : In(w_group_layout(config))
        Stored weight slots of the group.
    a_scale, w_scale : In(8)
        E8M0 block scales of the activation row and the weight column (MX only).
    ctl : In(control_layout)
        Group control (valid, tile/block first/last).
    result : Out(32)
        The finished output: binary32 bits (MX) or int32 (int8).  Holds its value until
        the next tile's result replaces it.
    result_valid : Out(1)
        High for one cycle when ``result`` takes a new tile's value.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Latency and throughput: one group per cycle with no stall for every config (a block
    may end every cycle); ``result_valid`` rises ``config.pe_latency`` cycles after the
    cycle in which the tile's last group is on the inputs.
    """

    def __init__(self, config):
        super().__init__(config, pe_signature(config))

    @property
    def latency(self):
        """Cycles from the tile's last group on the inputs to ``result_valid``
        (``golden.latency.LATENCY``: ``pe_mx`` or ``pe_int8``; ``config.pe_latency``)."""
        return self._config.pe_latency

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # -- front end (select, multipliers: cfg.front_stages), then the N exact products
        # summed and registered -----------------------------------------------------------
        products, flags = sparse_products(m, cfg, self.a, self.w, complement=cfg.scaled)
        front = cfg.front_stages
        ctl = delayed(m, self.ctl, front, "ctl")
        if not cfg.scaled:
            ctl1 = Signal(control_layout)
            psum = category_signal("accumulators", signed(cfg.block_acc_bits))
            m.d.sync += [ctl1.eq(ctl), psum.eq(multi_add(products, cfg.block_acc_bits, m=m))]
            stages = front + 1 + self._int8_accumulator(m, ctl1, psum)
        else:
            stages = front + self._mx_pipeline(m, ctl, products, flags)
        assert stages == self.latency, (stages, self.latency)
        return m

    def _int8_accumulator(self, m, ctl1, psum):
        """int8: int32 accumulator with two's-complement wraparound, split into halves
        with a registered carry (:class:`SplitAccumulator`, one add per cycle); the
        result register takes the high half's sum.  Returns the register stages (2)."""
        cfg = self._config
        acc = SplitAccumulator(m, cfg.acc_bits, psum, ctl1.tfirst, ctl1.valid, "acc")
        last = delayed(m, ctl1.valid & ctl1.tlast, acc.stages - 1, "tlast")
        m.d.sync += self.result_valid.eq(0)
        with m.If(last):
            m.d.sync += [self.result.eq(acc.sum_now), self.result_valid.eq(1)]
        return acc.stages

    def _mx_pipeline(self, m, ctl1, products, flags, stages_of=None):
        """MX stages after the front end: exact block accumulator, its resolve, block
        converter, binary32 output accumulator; returns the number of register stages.
        ``products``, ``flags`` and ``ctl1`` are the front end's registered products
        (any number of signed terms), their flag lists and their control.

        The block accumulator loop.  A loop-carried ``block_acc_bits``-wide add is a
        carry chain in the loop (55 FO4 at E4M3's 41 bits, 77 at E5M2's 69 in OSU018,
        even as a prefix adder), and cannot be cut without losing one group per cycle.
        So the accumulator stays in carry-save form: a sum and a carry row, to which each
        cycle a tree of 3:2 compressors adds the registered products themselves (N + 2
        rows down to two: 2 levels at N = 2, 7 at N = 16); the loop is a mux and a few
        full adders whatever the width, and the products need no stage of their own.  Modulo
        ``2**block_acc_bits`` the rows add to the exact block sum, which that width
        holds by construction (Config), so the modular sum is the integer sum.  The
        rows are resolved after the accumulator by a prefix adder (up to
        ``RESOLVE_STAGE_BITS``), else a two-stage carry-select adder
        (:class:`hw.adder.CarrySelectAdder`, ``Config.resolve_stages``; the block sum is
        read once per block and the adder is feed-forward: latency, no throughput).
        Widths come from
        ``self._config``; the stage counts (front end, converter, adder) from
        ``stages_of`` (default ``self._config``: a unified engine's shared back end is
        built for its datapath mode with the unified config's stage counts)."""
        cfg = self._config
        lat = cfg if stages_of is None else stages_of
        # Special-value flags exist only where the formats can produce them.
        ones = flags.pop("neg", ())    # the complemented products' +1s
        names = list(flags)
        flag1 = {k: any_of(flags[k]) for k in names}
        front = lat.front_stages
        a_scale1 = delayed(m, self.a_scale, front, "a_scale")
        w_scale1 = delayed(m, self.w_scale, front, "w_scale")

        # -- stage 1: exact block accumulator in carry-save form (never rounds:
        # block_acc_bits is enough) ------------------------------------------------------
        width = cfg.block_acc_bits
        bacc_s = category_signal("accumulators", width)
        bacc_c = category_signal("accumulators", width)
        flag2 = {k: Signal(name=f"block_{k}") for k in names}
        a_scale2, w_scale2 = Signal(cfg.scale_bits), Signal(cfg.scale_bits)
        blk_done = Signal()          # bacc holds a finished block this cycle
        blk_tfirst = Signal()        # ... which is the first block of its tile
        blk_tlast = Signal()         # ... which is the last block of its tile
        tfirst_seen = Signal()       # the running block started a tile
        bsum_s, bsum_c = carry_save(
            [Mux(ctl1.bfirst, 0, bacc_s), Mux(ctl1.bfirst, 0, bacc_c), *products], width,
            ones=ones, m=m)
        m.d.sync += blk_done.eq(ctl1.valid & ctl1.blast)
        with m.If(ctl1.valid):
            started_tile = Mux(ctl1.bfirst, ctl1.tfirst, tfirst_seen)
            m.d.sync += [flag2[k].eq(flag1[k] | (~ctl1.bfirst & flag2[k])) for k in names]
            m.d.sync += [
                bacc_s.eq(bsum_s),
                bacc_c.eq(bsum_c),
                a_scale2.eq(a_scale1),
                w_scale2.eq(w_scale1),
                tfirst_seen.eq(started_tile),
                blk_tfirst.eq(started_tile),
                blk_tlast.eq(ctl1.tlast),
            ]

        # -- stages 2..: the block sum resolved (the two rows added, lat.resolve_stages) --
        resolve = CarrySelectAdder(m, bacc_s, bacc_c, width, "bacc",
                                   stages=lat.resolve_stages)
        bacc = resolve.sum.as_signed()
        a_scale3 = delayed(m, a_scale2, resolve.stages, "a_scale2")
        w_scale3 = delayed(m, w_scale2, resolve.stages, "w_scale2")
        flag3 = {k: delayed(m, flag2[k], resolve.stages, f"block_{k}") for k in names}

        # -- then: scale and round the block sum once to binary32 (convert_stages
        # inside the converter, then the term register) --------------------------------
        m.submodules.convert = conv = units.BlockConverter(cfg, stages=lat.convert_stages)
        m.d.comb += [
            conv.sum.eq(bacc), conv.a_scale.eq(a_scale3), conv.w_scale.eq(w_scale3),
        ]
        m.d.comb += [getattr(conv, k).eq(flag3[k]) for k in names]
        term = Signal(cfg.acc_bits)
        term_valid, term_tfirst, term_tlast = Signal(), Signal(), Signal()
        lag = resolve.stages + lat.convert_stages
        m.d.sync += [
            term.eq(conv.result),
            term_valid.eq(delayed(m, blk_done, lag, "blk_done")),
            term_tfirst.eq(delayed(m, blk_tfirst, lag, "blk_tfirst")),
            term_tlast.eq(delayed(m, blk_tlast, lag, "blk_tlast")),
        ]

        # -- then: binary32 output accumulator (starts from +0.0 each tile).  The adder
        # has acc_add_stages registers; the next block's term reads acc only after the
        # previous sum is in it (lat.acc_add_stages < groups_per_block). ---------------
        m.submodules.add = add = units.Float32Adder(stages=lat.acc_add_stages)
        acc = category_signal("accumulators", cfg.acc_bits)
        m.d.comb += [add.a.eq(Mux(term_tfirst, 0, acc)), add.b.eq(term)]
        lag = lat.acc_add_stages
        sum_valid = delayed(m, term_valid, lag, "term_valid")
        sum_tlast = delayed(m, term_tlast, lag, "term_tlast")
        m.d.sync += self.result_valid.eq(0)
        with m.If(sum_valid):
            m.d.sync += acc.eq(add.sum)
            with m.If(sum_tlast):
                m.d.sync += [self.result.eq(add.sum), self.result_valid.eq(1)]
        return 3 + resolve.stages + lat.convert_stages + lat.acc_add_stages


class ModuleReference(ConfigComponent):
    """A reference (Amaranth ``Instance``) to a separately emitted module whose ports are
    the members of ``signature``: inputs ``i_<member>``, outputs ``o_<member>``, plus
    ``clk`` and ``rst``.  Base of :class:`PEInstance` and :class:`hw.ws.WSPEInstance`.

    Parameters
    ----------
    config : golden.Config
    module_name : str
        Name of the emitted module.
    signature : wiring.Signature
        Its ports.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`, or ``module_name`` is not a non-empty
        string.
    """

    @classmethod
    def validate(cls, config, module_name, *args, **kwargs):
        super().validate(config)
        if not isinstance(module_name, str) or not module_name:
            raise TypeError(f"PE module name must be a non-empty string, not {module_name!r}")

    def __init__(self, config, module_name, signature):
        self._module_name = module_name
        super().__init__(config, signature)

    def elaborate(self, platform):
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for name, member in self.signature.members.items():
            prefix = "i_" if member.flow == In else "o_"
            ports[prefix + name] = Value.cast(getattr(self, name))
        m = Module()
        m.submodules.pe = Instance(self._module_name, **ports)
        return m


class PEInstance(ModuleReference):
    """A reference to a separately emitted :class:`PE` module, with the PE's signature.

    The generator emits the PE once as the Verilog module ``module_name`` and builds the
    array from these references, so that the netlist holds one PE definition instead of
    R x C copies (elaboration stays fast and synthesis sees one PE to report).  The
    Python simulator cannot run an instance of a foreign module: tests use :class:`PE`.

    Parameters
    ----------
    config : golden.Config
    module_name : str
        Name of the emitted PE module (ports named after the PE's signature members,
        plus ``clk`` and ``rst``).
    """

    def __init__(self, config, module_name):
        super().__init__(config, module_name, pe_signature(config))
