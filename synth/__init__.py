"""nmmx area estimation with Yosys.

``synth.estimate.estimate_area(config, top="engine")`` synthesizes every unique module
of the design once (cached) and returns the area report; ``python -m synth`` prints it.
Areas are NAND2 gate equivalents from ``synth/cells.lib``; see ``synth/README.md``.

One concern per module:

========================  ==============================================================
``synth.liberty``         cell areas, output pins and flip-flops of a liberty file
``synth.rtlil``           Amaranth -> RTLIL, split into modules, canonicalized, hashed
``synth.yosys``           the Yosys command list, running Yosys, one module's figures
``synth.attribution``     a module's cells by the sink they feed; the PE breakdown
``synth.area``            the hierarchical, cached flow over any Amaranth design
``synth.estimate``        nmmx designs: PE, array or engine of a ``golden.Config``
========================  ==============================================================

The caches are :class:`nmmx.cache.Cache` directories (``synth.area.module_cache``,
``synth.area.design_cache``).
"""
