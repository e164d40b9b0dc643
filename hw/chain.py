"""Register chains: the one helper for a value that moves one stage per cycle (the links
between neighbouring PEs, and the skew of read addresses and control)."""

from .component import category_signal

__all__ = ["register_chain", "link_chains"]


def register_chain(m, first, count, name, *, category="pipeline_registers"):
    """Yield ``first`` and then ``count - 1`` registered copies of it, each one cycle later
    than the one before: the value as stage ``i`` of a chain sees it.

    Parameters
    ----------
    m : Module
        Gets one ``sync`` register per copy.
    first : Value or View
        Stage 0 (not registered here).
    count : int
        Number of stages, including ``first``.
    name : str or callable
        Copy ``i`` (``i >= 1``) is named ``f"{name}_{i}"``, or ``name(i)`` when callable.
    category : str
        Area category of the copies (:func:`hw.component.category_signal`); pipeline
        registers carry no attribute.
    """
    stage = first
    for i in range(count):
        if i:
            reg_name = name(i) if callable(name) else f"{name}_{i}"
            nxt = category_signal(category, stage.shape(), name=reg_name)
            m.d.sync += nxt.eq(stage)
            stage = nxt
        yield stage


def link_chains(m, source, ports, index, count, name, categories=None):
    """The links between neighbouring PEs along one row or column: for each port name in
    ``ports``, a :func:`register_chain` of ``count`` stages starting at
    ``getattr(source, port)[index]``.

    Yields, stage by stage, ``{port: value at that stage}``; the chains advance together,
    so the registers of stage ``i`` are added to ``m`` when stage ``i`` is taken.
    ``name(port, i)`` names the register of stage ``i``; ``categories`` maps a port to
    its registers' area category (default pipeline registers).
    """
    categories = categories or {}
    chains = [register_chain(m, getattr(source, p)[index], count, lambda i, p=p: name(p, i),
                             category=categories.get(p, "pipeline_registers"))
              for p in ports]
    for values in zip(*chains):
        yield dict(zip(ports, values))
