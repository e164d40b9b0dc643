"""nmmx area estimation with Yosys.

``synth.flow.estimate_area(config, top="engine")`` synthesizes every unique module of
the design once (cached) and returns the area report; ``python -m synth`` prints it.
Areas are NAND2 gate equivalents from ``synth/cells.lib``; see ``synth/README.md``.
"""
