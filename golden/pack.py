"""Buffer images of the engine: encoded operands -> write-port words, C words -> results.

The word layouts are field tables (:func:`word_layouts`): this module packs by them,
``hw`` builds its ``lib.data`` layouts from them (:mod:`hw.word`) and the generator's
manifest dumps them; every width comes from :class:`golden.Config`.

Words are returned as numpy arrays: ``uint64`` while the engine's write data port is at
most 64 bits wide, otherwise an ``object`` array of Python ints (an A group is up to
16 x 8 = 128 bits, a W group up to 16 x 12 = 192 bits).  Either way ``int(word)`` is the
value to drive on ``wr_data``.
"""

import enum
from dataclasses import dataclass

import numpy as np

from .config import Config
from .gemm import EncodedOperands

__all__ = ["Writes", "WrSel", "WR_SEL", "Field", "WordLayout", "word_layouts",
           "pack_operands", "c_read_addresses", "unpack_c", "pack_fields", "stream_words",
           "unpack_c_stream"]

class WrSel(enum.IntEnum):
    """``wr_sel`` code of each buffer the host writes: the shape of the engine's
    ``wr_sel`` port.  Member names are the buffer names in upper case."""

    A_DATA = 0
    A_SCALE = 1
    W_DATA = 2
    W_SCALE = 3

    @classmethod
    def of(cls, buffer):
        """The code of the buffer named ``buffer`` (``"a_data"``, ...)."""
        return cls[buffer.upper()]


#: Buffer name -> ``wr_sel`` code (:class:`WrSel`), as the manifest lists it.
WR_SEL = {sel.name.lower(): int(sel) for sel in WrSel}


@dataclass(frozen=True)
class Field:
    """One field of a buffer word element: ``width`` bits at ``offset`` inside it."""

    name: str
    offset: int
    width: int


@dataclass(frozen=True)
class WordLayout:
    """A buffer word: ``count`` elements of ``stride`` bits, element i at bits
    ``[i*stride, (i+1)*stride)``, each made of ``fields`` (offsets inside the element).

    Members
    -------
    element : str
        Element name (``"a"``, ``"slot"``, ``"lane"``, ``"e8m0"``).
    count : int
        Elements per word; ``indexed`` is false for a word that is one element.
    fields : tuple of Field
        The element's fields, contiguous from offset 0; one field named ``""`` when the
        element is a plain code.
    meaning : str
    """

    element: str
    count: int
    fields: tuple
    meaning: str
    indexed: bool = True

    def __post_init__(self):
        offset = 0
        for f in self.fields:
            assert f.offset == offset and f.width > 0, (self.element, f)
            offset += f.width

    @property
    def stride(self):
        """Bits per element."""
        return sum(f.width for f in self.fields)

    @property
    def width(self):
        """Bits per word."""
        return self.count * self.stride

    def field(self, name):
        """The element's field named ``name``."""
        return next(f for f in self.fields if f.name == name)

    def flat(self):
        """Every field of the word as a :class:`Field` with its word offset and full
        name (``"a[3]"``, ``"slot[1].index"``, ``"e8m0"``), element by element."""
        out = []
        for i in range(self.count):
            base = self.element + (f"[{i}]" if self.indexed else "")
            out.extend(Field(base + (f".{f.name}" if f.name else ""), i * self.stride + f.offset,
                             f.width) for f in self.fields)
        return out


def word_layouts(config):
    """The field table of every host-visible buffer word of ``config``'s engine:
    buffer name -> :class:`WordLayout` (``a_data``, ``w_data``, MX: ``a_scale``,
    ``w_scale``, then ``c``)."""
    w_fields = [Field("value", 0, config.w_fmt.bits)]
    if not config.dense:
        w_fields.append(Field("index", config.w_fmt.bits, config.index_bits))
    out = {
        "a_data": WordLayout("a", config.m_group, (Field("", 0, config.a_fmt.bits),),
                             "a[t] = element code of K index g*m_group + t"),
        "w_data": WordLayout("slot", config.n_keep, tuple(w_fields),
                             "slot s: weight code, then its position inside the group "
                             "of m_group (no index when dense: slot s is position s)"),
    }
    if config.scaled:
        e8m0 = (Field("", 0, config.scale_bits),)
        out["a_scale"] = WordLayout("e8m0", 1, e8m0, "E8M0 scale of block b of row i",
                                    indexed=False)
        out["w_scale"] = WordLayout("e8m0", 1, e8m0, "E8M0 scale of block b of column j",
                                    indexed=False)
    out["c"] = WordLayout("lane", config.cols, (Field("", 0, config.acc_bits),),
                          ("binary32 bit pattern" if config.scaled else
                           "int32 two's complement") + " of C[i, (j div cols)*cols + lane]")
    return out


@dataclass(frozen=True)
class Writes:
    """Buffer writes, one per index, in the order a loader should issue them.

    Members
    -------
    sel : numpy.ndarray of uint8
        ``wr_sel`` (:data:`WR_SEL`).
    bank, addr : numpy.ndarray of int64
        ``wr_bank`` and ``wr_addr``.
    data : numpy.ndarray of uint64 or object
        ``wr_data``, right-aligned (``object`` of Python ints when the port is wider
        than 64 bits).
    """

    sel: np.ndarray
    bank: np.ndarray
    addr: np.ndarray
    data: np.ndarray

    def __len__(self):
        return len(self.sel)

    def __iter__(self):
        """Yield ``(sel, bank, addr, data)`` tuples of Python ints."""
        return zip(self.sel.tolist(), self.bank.tolist(), self.addr.tolist(),
                   self.data.tolist())


def pack_fields(fields, bits):
    """Pack ``fields[..., f]`` (unsigned, each ``bits`` wide) at bits ``[f*bits, ...)``.

    Returns a ``uint64`` array when the packed word fits 64 bits, else an ``object`` array
    of Python ints.  Vectorized over words; the loop runs over field positions only.
    """
    fields = np.asarray(fields).astype(np.uint64)
    count = fields.shape[-1]
    total = count * bits
    limbs = max(1, -(-total // 64))
    out = np.zeros(fields.shape[:-1] + (limbs,), np.uint64)
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(-1)
    for f in range(count):
        v = fields[..., f] & mask
        off = f * bits
        limb, sh = divmod(off, 64)
        out[..., limb] |= v << np.uint64(sh)
        if sh + bits > 64:
            out[..., limb + 1] |= v >> np.uint64(64 - sh)
    if limbs == 1:
        return out[..., 0]
    word = out[..., 0].astype(object)
    for limb in range(1, limbs):
        word = word | (out[..., limb].astype(object) << (64 * limb))
    return word


def _as_port(words, config):
    """Cast packed words to the representation the whole write stream uses."""
    if config.wr_data_bits <= 64:
        return np.asarray(words).astype(np.uint64)
    return np.asarray(words).astype(object)


def _bank_addr(index, banks, per_bank, inner):
    """Bank ``index mod banks`` and address ``(index div banks) * per_bank + inner``."""
    index = np.asarray(index, np.int64)
    return index % banks, (index // banks) * per_bank + inner


def pack_operands(config, enc):
    """Every buffer write that loads ``enc`` into an engine built from ``config``.

    Parameters
    ----------
    config : Config
        The engine's configuration (its buffer geometry places the words).
    enc : golden.gemm.EncodedOperands
        Encoded operands; K is already zero-padded to whole blocks, so the padded groups
        are written as zeros.

    Returns
    -------
    Writes
        A data, A scales, W data, W scales, in that order (no scale writes for ``int8``).

    Raises
    ------
    TypeError
        ``config`` or ``enc`` has the wrong type.
    ValueError
        ``enc`` does not match ``config`` or does not fit the engine's buffers.
    """
    if not isinstance(config, Config):
        raise TypeError(f"pack_operands needs a golden.Config, not {type(config).__name__}")
    if not isinstance(enc, EncodedOperands):
        raise TypeError(f"pack_operands needs EncodedOperands, not {type(enc).__name__}")
    enc.validate(config)
    config.check_gemm(int(enc.m), int(enc.k), int(enc.n))
    m, n = int(enc.m), int(enc.n)
    R, C, M = config.rows, config.cols, config.m_group
    Gmax, Bmax = config.groups_max, config.blocks_max
    groups = enc.w_values.shape[0]
    blocks = enc.a_scales.shape[1]
    words = word_layouts(config)
    parts = []

    def add(sel, bank, addr, data):
        parts.append((np.full(bank.size, WR_SEL[sel], np.uint8), bank.reshape(-1),
                      addr.reshape(-1), _as_port(data, config).reshape(-1)))

    # A data: row i, group g -> bank i mod R, address (i div R) * Gmax + g.
    a_groups = enc.a_codes.reshape(m, groups, M)
    i = np.arange(m)[:, None]
    g = np.arange(groups)[None, :]
    bank, addr = _bank_addr(np.broadcast_to(i, (m, groups)), R, Gmax, g)
    add("a_data", bank, addr, pack_fields(a_groups, words["a_data"].stride))

    if config.scaled:
        b = np.arange(blocks)[None, :]
        bank, addr = _bank_addr(np.broadcast_to(i, (m, blocks)), R, Bmax, b)
        add("a_scale", bank, addr, enc.a_scales.astype(np.uint64))

    # W data: column j, group g -> bank j mod C, address (j div C) * Gmax + g; each slot
    # is its value code and index at their fields' offsets (no index field when dense).
    w_word = words["w_data"]
    slots = enc.w_values.astype(np.uint64) << np.uint64(w_word.field("value").offset)
    if not config.dense:
        slots = slots | (enc.w_indices.astype(np.uint64)
                         << np.uint64(w_word.field("index").offset))
    slots = slots.transpose(2, 0, 1)                          # [n, G, n_keep]
    j = np.arange(n)[:, None]
    bank, addr = _bank_addr(np.broadcast_to(j, (n, groups)), C, Gmax, g)
    add("w_data", bank, addr, pack_fields(slots, w_word.stride))

    if config.scaled:
        b = np.arange(blocks)[None, :]
        bank, addr = _bank_addr(np.broadcast_to(j, (n, blocks)), C, Bmax, b)
        add("w_scale", bank, addr, enc.w_scales.T.astype(np.uint64))

    sel, bank, addr, data = (np.concatenate(x) for x in zip(*parts))
    return Writes(sel=sel, bank=bank.astype(np.int64), addr=addr.astype(np.int64),
                  data=_as_port(data, config))


def c_read_addresses(config, m):
    """The C-buffer addresses that hold rows ``0 .. m-1``: ``range(m * n_tiles_max)``."""
    return range(m * config.n_tiles_max)


def unpack_c(config, words, m, n):
    """Turn C-buffer words into the result matrix.

    Parameters
    ----------
    config : Config
    words : sequence of int
        ``rd_data`` of addresses ``0, 1, ...`` (at least ``m * n_tiles_max`` of them, see
        :func:`c_read_addresses`); lane c of a word at bits ``[32c, 32c+32)``.
    m, n : int
        Result shape.

    Returns
    -------
    numpy.ndarray, shape (m, n)
        float32 bit patterns (int32 for ``int8`` engines).

    Raises
    ------
    ValueError
        Fewer words than the result needs.
    """
    if not isinstance(config, Config):
        raise TypeError(f"unpack_c needs a golden.Config, not {type(config).__name__}")
    need = m * config.n_tiles_max
    if len(words) < need:
        raise ValueError(f"unpack_c needs {need} C words for {m} rows, not {len(words)}")
    lane_bytes = config.acc_bits // 8
    raw = b"".join(int(w).to_bytes(lane_bytes * config.cols, "little")
                   for w in list(words)[:need])
    lanes = np.frombuffer(raw, dtype="<u4").reshape(m, config.n_tiles_max * config.cols)
    lanes = lanes[:, :n].copy()
    return lanes.view(np.float32 if config.scaled else np.int32)


# -- AXI4-Stream words of the SoC wrapper (hw.soc, streams in golden.regmap) --------------


def stream_words(config, enc):
    """The words of every load stream of the AXI wrapper, in stream order.

    A stream word is one buffer word (the layouts above), right-aligned in TDATA; the
    order is the one :func:`golden.regmap.streams` documents (row or column major, then
    group or block), which is the order :func:`pack_operands` issues the writes of each
    buffer in, so the wrapper derives bank and address from the word's position.

    Returns
    -------
    dict of str to numpy.ndarray
        Stream name (``"a"``, ``"w"``, and for MX ``"a_scale"``, ``"w_scale"``) -> words
        (``uint64``, or ``object`` of Python ints when wider than 64 bits).  TLAST goes
        with the last word of each.
    """
    from .regmap import streams
    writes = pack_operands(config, enc)
    out = {}
    for s in streams(config):
        if s.direction == "in":
            out[s.name] = writes.data[writes.sel == WR_SEL[s.buffer]]
    return out


def unpack_c_stream(config, words, m, n):
    """Turn the C stream (``m * ceil(n/cols)`` words: row i, then column tile t; lane c
    at bits ``[32c, 32c+32)`` is column ``t*cols + c``, zero beyond ``n``) into the
    result bit patterns, shape (m, n) (float32, int32 for ``int8``).

    Raises
    ------
    ValueError
        The word count is not the one the shape needs, or a lane beyond ``n`` is not 0.
    """
    if not isinstance(config, Config):
        raise TypeError(f"unpack_c_stream needs a golden.Config, not {type(config).__name__}")
    tiles = -(-n // config.cols)
    if len(words) != m * tiles:
        raise ValueError(f"unpack_c_stream needs {m * tiles} C words for {m}x{n}, "
                         f"not {len(words)}")
    lane_bytes = config.acc_bits // 8
    raw = b"".join(int(w).to_bytes(lane_bytes * config.cols, "little") for w in words)
    lanes = np.frombuffer(raw, dtype="<u4").reshape(m, tiles * config.cols)
    if lanes[:, n:].any():
        raise ValueError(f"C stream lanes beyond n={n} are not zero")
    return lanes[:, :n].copy().view(np.float32 if config.scaled else np.int32)
