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
           "data_words", "pack_operands", "c_read_addresses", "unpack_c", "pack_fields", "stream_words",
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


def _data_layouts(config):
    """The ``a_data`` and ``w_data`` layouts: a fixed engine's element codes, or the
    unified engine's bytes and byte slots (``config.unified``)."""
    if config.unified:
        w_fields = [Field("value", 0, 8)]
        if config.mode_index_bits:
            w_fields.append(Field("index", 8, config.mode_index_bits))
        return {
            "a_data": WordLayout("byte", config.mode_a_bytes, (Field("", 0, 8),),
                                 "byte t of group g: the code of K index g*m_group + t "
                                 "(8-bit modes), or those of 2t in the low and 2t+1 in the "
                                 "high nibble (4-bit modes); a mode's m_group K positions "
                                 "fill the low bytes"),
            "w_data": WordLayout("slot", config.mode_slots, tuple(w_fields),
                                 "slot s: one 8-bit weight code, or two 4-bit codes (the "
                                 "lower K position in the low nibble), then the byte of the "
                                 "A group it multiplies (sparse modes; a dense mode's slot s "
                                 "is byte s and its index is 0)"),
        }
    w_fields = [Field("value", 0, config.w_fmt.bits)]
    if not config.dense:
        w_fields.append(Field("index", config.w_fmt.bits, config.index_bits))
    return {
        "a_data": WordLayout("a", config.m_group, (Field("", 0, config.a_fmt.bits),),
                             "a[t] = element code of K index g*m_group + t"),
        "w_data": WordLayout("slot", config.n_keep, tuple(w_fields),
                             "slot s: weight code, then its position inside the group "
                             "of m_group (no index when dense: slot s is position s)"),
    }


def word_layouts(config):
    """The field table of every host-visible buffer word of ``config``'s engine:
    buffer name -> :class:`WordLayout` (``a_data``, ``w_data``, MX: ``a_scale``,
    ``w_scale``, then ``c``).  A unified engine (``config.unified``) has the widest
    mode's words: bytes of activation codes, and 8-bit weight slots with a byte index
    (:func:`data_words` packs each mode into them)."""
    out = _data_layouts(config)
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


def data_words(config, enc, mode=None):
    """The A and W data words of ``enc`` in ``config``'s word layouts, not yet placed
    in banks.

    Parameters
    ----------
    config : Config
    enc : golden.gemm.EncodedOperands
        Encoded for ``config``, or for ``config.mode(mode)`` when ``config`` is unified.
    mode : Mode or str, optional
        The mode ``enc`` is in (required when ``config.unified``).

    Returns
    -------
    a_words : numpy.ndarray, shape (M, G)
        Word of row i, group g (G groups of the mode's ``m_group``).
    w_words : numpy.ndarray, shape (N, G)
        Word of column j, group g.

    A unified engine's words, per mode: A keeps the mode's codes contiguous (4-bit codes
    two to a byte, so a byte is one value or one pair); W slot s holds an 8-bit code, or
    the two 4-bit codes of values 2s and 2s+1 of the group (a pair of adjacent K
    positions when pair-sparse, ``index`` = its pair position = its byte), index 0
    in dense modes.
    """
    one = config.mode(mode) if config.unified else config
    enc.validate(one)
    m, n = int(enc.m), int(enc.n)
    groups = enc.w_values.shape[0]
    words = word_layouts(config)
    a_groups = enc.a_codes.reshape(m, groups, one.m_group)
    a_words = pack_fields(a_groups, one.a_fmt.bits)
    w_word = words["w_data"]
    values = enc.w_values.astype(np.uint64)
    index = enc.w_indices.astype(np.uint64)
    if config.unified:
        if config.mode_narrow(mode):
            values = values[:, 0::2] | (values[:, 1::2] << np.uint64(4))
            index = index[:, 0::2] >> np.uint64(1)
        if one.dense:
            index = np.zeros_like(index)
    slots = values << np.uint64(w_word.field("value").offset)
    if len(w_word.fields) > 1:
        slots = slots | (index << np.uint64(w_word.field("index").offset))
    w_words = pack_fields(slots.transpose(2, 0, 1), w_word.stride)   # [n, G, slots]
    return a_words, w_words


def pack_operands(config, enc, mode=None):
    """Every buffer write that loads ``enc`` into an engine built from ``config``.

    Parameters
    ----------
    config : Config
        The engine's configuration (its buffer geometry places the words).
    enc : golden.gemm.EncodedOperands
        Encoded operands; K is already zero-padded to whole blocks, so the padded groups
        are written as zeros.
    mode : Mode or str, optional
        A unified engine's mode, the one ``enc`` is encoded for (:func:`data_words`).

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
    if config.unified and mode is None:
        raise ValueError(f"pack_operands needs the mode of an engine with several modes, "
                         f"one of {', '.join(x.spec for x in config.modes)}")
    a_words, w_words = data_words(config, enc, mode)
    config.check_gemm(int(enc.m), int(enc.k), int(enc.n))
    m, n = int(enc.m), int(enc.n)
    R, C = config.rows, config.cols
    Gmax, Bmax = config.groups_max, config.blocks_max
    groups = enc.w_values.shape[0]
    blocks = enc.a_scales.shape[1]
    parts = []

    def add(sel, bank, addr, data):
        parts.append((np.full(bank.size, WR_SEL[sel], np.uint8), bank.reshape(-1),
                      addr.reshape(-1), _as_port(data, config).reshape(-1)))

    # A data: row i, group g -> bank i mod R, address (i div R) * Gmax + g.
    i = np.arange(m)[:, None]
    g = np.arange(groups)[None, :]
    bank, addr = _bank_addr(np.broadcast_to(i, (m, groups)), R, Gmax, g)
    add("a_data", bank, addr, a_words)

    if config.scaled:
        b = np.arange(blocks)[None, :]
        bank, addr = _bank_addr(np.broadcast_to(i, (m, blocks)), R, Bmax, b)
        add("a_scale", bank, addr, enc.a_scales.astype(np.uint64))

    # W data: column j, group g -> bank j mod C, address (j div C) * Gmax + g; each slot
    # is its value code and index at their fields' offsets (no index field when dense).
    j = np.arange(n)[:, None]
    bank, addr = _bank_addr(np.broadcast_to(j, (n, groups)), C, Gmax, g)
    add("w_data", bank, addr, w_words)

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
