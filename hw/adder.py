"""Log-depth integer adders for the PE datapath.

Yosys maps ``a + b`` to a ripple carry chain, and ABC does not rebuild a ripple chain
as a tree: a 69-bit block accumulator then takes about 80 FO4 in OSU018.  The PE's wide
adds are written here as parallel-prefix (Kogge-Stone) adders, a multi-operand sum as a
carry-save (3:2) tree ending in one such adder, so that their depth grows with
log2(width).  Results are exact modulo ``2**width`` (two's complement wraps), the same
numbers as Amaranth's ``+`` truncated to ``width``.  Every step is a whole-vector
operation (AND, OR, XOR, shift), which keeps the Python simulator fast.
"""

from amaranth.hdl import Cat, Const, Value

__all__ = ["prefix_add", "multi_add"]


def _extend(value, width):
    """``value`` sign- or zero-extended (by its shape) or truncated to ``width`` bits, as
    an unsigned value."""
    v = Value.cast(value)
    if len(v) < width:
        pad = v[-1] if v.shape().signed else Const(0, 1)
        v = Cat(v, *([pad] * (width - len(v))))
    return v[:width]


def prefix_add(a, b, width, carry_in=0):
    """``(a + b + carry_in) mod 2**width`` as a Kogge-Stone prefix adder (an unsigned
    ``width``-bit value; ``a``/``b`` are extended by their own signedness)."""
    x, y = _extend(a, width), _extend(b, width)
    p = x ^ y
    g = x & y
    if not (isinstance(carry_in, int) and carry_in == 0):
        # The carry in generates into bit 0 when bit 0 propagates.
        g = g | Cat(p[0] & carry_in, Const(0, width - 1))
    gg, pp = g, p
    span = 1
    while span < width:
        # (G, P)[i] o (G, P)[i - span]; below span the pair is kept (shifted-in zeros
        # would clear P, so the P shift fills with ones there).
        gg = gg | (pp & (gg << span)[:width])
        pp = pp & Cat(Const((1 << span) - 1, span), pp)[:width]
        span *= 2
    # Carry into bit i is the group generate of bits 0..i-1 (plus the carry in at 0).
    c0 = Const(0, 1) if isinstance(carry_in, int) else carry_in
    return (p ^ Cat(c0, gg[:width - 1]))[:width]


def multi_add(values, width):
    """Sum of ``values`` modulo ``2**width``: a carry-save tree of 3:2 compressors down
    to two operands, then :func:`prefix_add`."""
    rows = [_extend(v, width) for v in values]
    if len(rows) == 1:
        return rows[0]
    while len(rows) > 2:
        nxt = []
        while len(rows) >= 3:
            a, b, c = rows.pop(0), rows.pop(0), rows.pop(0)
            nxt.append(a ^ b ^ c)
            nxt.append(Cat(Const(0, 1), ((a & b) | (a & c) | (b & c))[:width - 1]))
        rows = nxt + rows
    return prefix_add(rows[0], rows[1], width)
