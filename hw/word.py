"""``lib.data`` layouts of buffer words, built from golden's field tables.

:func:`golden.pack.word_layouts` describes every buffer word once (element count, field
names, offsets, widths); the packer and the manifest read the same table.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from golden.pack import word_layouts

__all__ = ["word_layout", "element_layout"]


def element_layout(word):
    """One element of ``word`` (a :class:`golden.pack.WordLayout`): ``unsigned(width)``
    when it is a plain code, else a ``StructLayout`` of its fields at their offsets."""
    if len(word.fields) == 1 and not word.fields[0].name:
        return unsigned(word.stride)
    layout = data.StructLayout({f.name: unsigned(f.width) for f in word.fields})
    for f in word.fields:
        assert layout[f.name].offset == f.offset, (word.element, f)
    return layout


def word_layout(config, buffer):
    """The ``ArrayLayout`` of one ``buffer`` word (``"a_data"``, ``"w_data"``) of
    ``config``'s engine: ``count`` elements of :func:`element_layout`."""
    word = word_layouts(config)[buffer]
    return data.ArrayLayout(element_layout(word), word.count)
