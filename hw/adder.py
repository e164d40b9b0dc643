"""Log-depth integer adders for the PE datapath.

Yosys maps ``a + b`` to a ripple carry chain, and ABC does not rebuild a ripple chain
as a tree: a 69-bit block accumulator then takes about 80 FO4 in OSU018.  The PE's wide
adds are written here as parallel-prefix (Kogge-Stone) adders, a multi-operand sum as a
carry-save (3:2) tree ending in one such adder, so that their depth grows with
log2(width).  Results are exact modulo ``2**width`` (two's complement wraps), the same
numbers as Amaranth's ``+`` truncated to ``width``.  Every step is a whole-vector
operation (AND, OR, XOR, shift), which keeps the Python simulator fast.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from golden.latency import RESOLVE_STAGE_BITS

__all__ = ["prefix_add", "multi_add", "carry_save", "CarrySelectAdder"]


def _extend(value, width):
    """``value`` sign- or zero-extended (by its shape) or truncated to ``width`` bits, as
    an unsigned value."""
    v = Value.cast(value)
    if len(v) < width:
        pad = v[-1] if v.shape().signed else Const(0, 1)
        v = Cat(v, *([pad] * (width - len(v))))
    return v[:width]


def _level(m, value):
    """``value`` as a signal of ``m``'s comb domain when ``m`` is given.  An Amaranth
    expression used twice is emitted twice: a prefix level uses the one before it twice
    and a 3:2 compressor each input three times, so without signals the Verilog of a
    wide adder tree grows exponentially with its depth (a 2x3 E5M2 WS engine's PE was
    6.5 MB), and so do Verilator's and the Python simulator's work."""
    if m is None:
        return value
    s = Signal(len(value))
    m.d.comb += s.eq(value)
    return s


def prefix_add(a, b, width, carry_in=0, m=None):
    """``(a + b + carry_in) mod 2**width`` as a Kogge-Stone prefix adder (an unsigned
    ``width``-bit value; ``a``/``b`` are extended by their own signedness).  Given a
    module ``m``, each prefix level is a signal in its comb domain (the same logic; the
    Python simulator then evaluates each level once instead of copying it into the
    next)."""
    x, y = _level(m, _extend(a, width)), _level(m, _extend(b, width))
    p = _level(m, x ^ y)
    g = x & y
    if not (isinstance(carry_in, int) and carry_in == 0):
        # The carry in generates into bit 0 when bit 0 propagates.
        g = g | Cat(p[0] & carry_in, Const(0, width - 1))
    gg, pp = _level(m, g), p
    span = 1
    while span < width:
        # (G, P)[i] o (G, P)[i - span]; below span the pair is kept (shifted-in zeros
        # would clear P, so the P shift fills with ones there).
        gg = gg | (pp & (gg << span)[:width])
        pp = pp & Cat(Const((1 << span) - 1, span), pp)[:width]
        gg, pp = _level(m, gg), _level(m, pp)
        span *= 2
    # Carry into bit i is the group generate of bits 0..i-1 (plus the carry in at 0).
    c0 = Const(carry_in & 1, 1) if isinstance(carry_in, int) else carry_in
    return (p ^ Cat(c0, gg[:width - 1]))[:width]


def carry_save(values, width, ones=(), m=None):
    """``values`` plus the 1-bit values ``ones`` reduced to two ``width``-bit rows whose
    sum modulo ``2**width`` is their sum (a tree of 3:2 compressors; a carry out of the
    top bit is dropped, which modular arithmetic allows).  Its depth is a few full
    adders, whatever the width: a loop-carried sum kept in this form closes in O(1)
    gates per cycle.  Each 3:2 compressor's carry row has a free bit 0, which takes one
    of ``ones`` (a negation's ``+1``, :class:`hw.units.Multiplier` ``complement``): R
    rows reduce with R - 2 compressors, so R - 2 of them cost nothing; the rest become
    rows of their own."""
    rows = [_level(m, _extend(v, width)) for v in values]
    ones = list(ones)
    while len(ones) > max(len(rows) - 2, 0):
        rows.append(_extend(ones.pop(), width))
    if len(rows) == 1:
        rows.append(Const(0, width))
    while len(rows) > 2:
        nxt = []
        while len(rows) >= 3:
            a, b, c = rows.pop(0), rows.pop(0), rows.pop(0)
            low = ones.pop(0) if ones else Const(0, 1)
            nxt.append(_level(m, a ^ b ^ c))
            nxt.append(_level(m, Cat(low, ((a & b) | (a & c) | (b & c))[:width - 1])))
        rows = nxt + rows
    assert not ones
    return rows[0], rows[1]


def multi_add(values, width, m=None):
    """Sum of ``values`` modulo ``2**width``: a carry-save tree of 3:2 compressors down
    to two operands, then :func:`prefix_add` (``m``: every row and level a signal)."""
    if len(values) == 1:
        return _extend(values[0], width)
    return prefix_add(*carry_save(values, width, m=m), width, m=m)


class CarrySelectAdder:
    """``(a + b) mod 2**width`` in ``stages`` register stages, built into the caller's
    module: a feed-forward adder for a sum too wide for one stage (a 69-bit prefix
    adder is 53 FO4 in OSU018, a 16-bit one 20).  ``stages = 1`` is one registered
    :func:`prefix_add`; ``stages = 2`` is a carry-select adder:

    Stage 1 adds each ``chunk``-bit slice twice, with carry in 0 and 1 (two prefix
    adders side by side), and registers both sums and the slice's generate (carry out
    with carry in 0) and propagate (carry out only with carry in 1).  Stage 2 forms the
    carry into every slice from those (a prefix over the slices) and selects each
    slice's sum.  One new sum per cycle.

    Parameters
    ----------
    m : Module
    a, b : Value
        The operands (extended by their own signedness to ``width``).
    width : int
    name : str
        Prefix of the registers.
    stages : int
        1 or 2.
    chunk : int
        Slice width (two stages).

    Members
    -------
    sum : Value
        The registered sum (``width`` bits, unsigned), ``stages`` cycles after ``a``
        and ``b``.
    """

    def __init__(self, m, a, b, width, name, stages=2, chunk=RESOLVE_STAGE_BITS):
        assert stages in (1, 2), stages
        self.stages = stages
        x, y = _extend(a, width), _extend(b, width)
        self.sum = Signal(width, name=f"{name}_sum")
        if stages == 1:
            m.d.sync += self.sum.eq(prefix_add(x, y, width, m=m))
            return
        bounds = [(lo, min(lo + chunk, width)) for lo in range(0, width, chunk)]
        s0s, s1s, gs, ps = [], [], [], []
        for j, (lo, hi) in enumerate(bounds):
            w = hi - lo
            s0, s1 = (Signal(w, name=f"{name}_s{k}_{j}") for k in (0, 1))
            g, p = Signal(name=f"{name}_g{j}"), Signal(name=f"{name}_p{j}")
            sum0 = prefix_add(x[lo:hi], y[lo:hi], w + 1, m=m)
            sum1 = prefix_add(x[lo:hi], y[lo:hi], w + 1, carry_in=Const(1, 1), m=m)
            m.d.sync += [s0.eq(sum0[:w]), s1.eq(sum1[:w]), g.eq(sum0[w]),
                         p.eq(sum1[w] & ~sum0[w])]
            s0s.append(s0), s1s.append(s1), gs.append(g), ps.append(p)
        # Carry into slice j: with u = g | p and v = g (g and p never both set),
        # u & v = g and u ^ v = p, so the carries of u + v are the slice carries.
        n = len(bounds)
        g, p = Cat(*gs), Cat(*ps)
        carries = prefix_add(g | p, g, n, m=m) ^ p if n > 1 else Const(0, 1)
        m.d.sync += self.sum.eq(Cat(*(Mux(carries[j], s1s[j], s0s[j]) if j else s0s[0]
                                      for j in range(n))))
