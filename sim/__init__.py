"""nmmx verification: cocotb on Verilator, bit-exact against golden.

Modules
-------
``sim.run``
    :func:`sim.run.simulate` (one GEMM) and :func:`sim.run.simulate_cases` (several in
    one simulator run): generate, build once per Verilog hash, load, run, compare with
    ``golden.gemm.gemm_encoded`` bit for bit, and report cycles and utilization.
``sim.stimulus``
    Seeded stimulus classes (Gaussian, heavy-tailed, zero/saturating blocks, ties,
    subnormals, cancellation, NaN scales, Inf/NaN codes, odd metadata indices).
``sim.tb``
    The cocotb testbench (``TB`` class) that runs inside the simulator.
``sim.build``, ``sim.wrapper``
    The cached Verilator build around ``cocotb_tools.runner`` and the HDL clock wrapper.
``sim.harness``, ``sim.bench``
    The raw C++ speed baseline and ``python -m sim.bench``.
``sim.selftest``
    A tiny design that proves the flow without the engine.

Command lines: ``python -m sim --help`` and ``python -m sim.bench --help``.  Builds live in
``build/sim/<hash>/`` (or ``$NMMX_BUILD_DIR``); ``WAVES=1`` or ``--waves`` records FST.
"""
