"""``python -m sim.bench``: simulation speed of the cocotb flow against raw Verilator.

Measures, for one engine configuration and GEMM shape:

* the build time, cold (fresh build directory, nothing cached) and cached;
* simulated cycles per second of the cocotb flow while the engine computes (the
  testbench awaits ``done``; loading and reading C are excluded);
* the same for the same Verilog driven by the minimal C++ harness of
  :mod:`sim.harness` (zero buffers, start pulse, count cycles until ``done``);
* the time ``gen.generate`` takes to write the Verilog and manifest of the config.

Exit status 0 when the cocotb flow reaches ``--target`` (default 0.5) of raw speed, a
cached build takes at most ``--cached-target`` seconds (default 1) and generation at
most ``--gen-target`` seconds (default 20, the figure for the default 8x8 config).
These wall-clock figures are measured here, never asserted by the default tests.
"""

import json
import os
import sys
import tempfile
import time

from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, config_from_args,
                        refuse_modes, run_cli)
from golden.config import Config
from nmmx.files import atomic_write

from .build import PUBLIC_MODES
from .harness import build_harness, run_harness
from .run import Case, engine_model, simulate_cases
from .__main__ import parse_gemm

__all__ = ["bench", "main"]


def bench(config, m, k, n, *, reps=3, cold=False, public=None, hdl_clock=True,
          min_cycles=2_000_000):
    """Measure build times and simulation speeds; return a dict of the figures.

    Parameters
    ----------
    config : Config
    m, k, n : int
        GEMM shape of each run (must fit the engine).
    reps : int
        GEMMs simulated back to back in the cocotb run.
    cold : bool
        Build in a fresh temporary directory first, to time a cold build.
    public : str, optional
        :data:`sim.build.PUBLIC_MODES` key for both builds.
    hdl_clock : bool
        Clock generated in HDL (:mod:`sim.wrapper`) or by cocotb's ``Clock``.
    min_cycles : int
        The raw harness repeats the GEMM until it has simulated this many cycles.
    """
    from gen.generate import generate
    config.check_gemm(m, k, n)
    out = {"config": config.to_dict(), "gemm": [m, k, n], "public": public,
           "hdl_clock": hdl_clock}
    with tempfile.TemporaryDirectory(prefix="nmmx_bench_gen_") as gen_dir:
        t0 = time.perf_counter()
        generate(config, gen_dir)
        out["generate_seconds"] = time.perf_counter() - t0
    saved = os.environ.get("NMMX_BUILD_DIR")
    tmp = None
    try:
        if cold:
            tmp = tempfile.TemporaryDirectory(prefix="nmmx_bench_")
            os.environ["NMMX_BUILD_DIR"] = tmp.name
            t0 = time.perf_counter()
            model, _, _ = engine_model(config, hdl_clock=hdl_clock, public=public)
            out["cold_build_seconds"] = time.perf_counter() - t0
            out["cold_build_only_seconds"] = model.build_seconds
        model, verilog_path, top = engine_model(config, hdl_clock=hdl_clock, public=public)
        out["first_build_seconds"] = model.build_seconds
        model, verilog_path, top = engine_model(config, hdl_clock=hdl_clock, public=public)
        out["cached_build_seconds"] = model.build_seconds
        reports = simulate_cases(config, [Case(m, k, n, data="gaussian", seed=s)
                                          for s in range(reps)],
                                 hdl_clock=hdl_clock, public=public)
        cycles = sum(rr["sim_cycles"] for r in reports for rr in r["runs"])
        secs = sum(rr["seconds"] for r in reports for rr in r["runs"])
        out["cocotb_cycles"] = cycles
        out["cocotb_cycles_per_second"] = cycles / secs if secs else 0.0
        out["passed"] = all(r["passed"] for r in reports)
        out["cnt_cycles"] = reports[0]["cycles"]
        exe, hsec, _cached = build_harness(verilog_path, top, {"m": m, "k": k, "n": n},
                                           public=public)
        out["harness_build_seconds"] = hsec
        runs = max(1, -(-min_cycles // config.schedule.cycles(m, k, n)))
        raw = run_harness(exe, runs)
        out["raw_cycles"] = raw["cycles"]
        out["raw_cycles_per_second"] = raw["cycles_per_second"]
        out["raw_cnt_cycles"] = raw["cnt_cycles"]
        out["ratio"] = (out["cocotb_cycles_per_second"] / raw["cycles_per_second"]
                        if raw["cycles_per_second"] else 0.0)
    finally:
        if saved is None:
            os.environ.pop("NMMX_BUILD_DIR", None)
        else:
            os.environ["NMMX_BUILD_DIR"] = saved
        if tmp is not None:
            tmp.cleanup()
    return out


def format_bench(b):
    """The readable summary of a :func:`bench` result."""
    cfg = Config.from_dict(b["config"])
    m, k, n = b["gemm"]
    lines = [f"bench {cfg.name} gemm {m}x{k}x{n} "
             f"(public={b['public'] or 'default'}, clock={'hdl' if b['hdl_clock'] else 'cocotb'})"]
    if "cold_build_seconds" in b:
        lines.append(f"  build      cold {b['cold_build_seconds']:.1f} s (generate + verilate + "
                     f"compile), cached {b['cached_build_seconds'] * 1e3:.1f} ms")
    else:
        lines.append(f"  build      {b['first_build_seconds']:.1f} s, cached "
                     f"{b['cached_build_seconds'] * 1e3:.1f} ms")
    lines += [
        f"  generate   {b['generate_seconds']:.2f} s (Verilog + manifest)",
        f"  raw C++    {b['raw_cycles_per_second'] / 1e6:.3f} M cycles/s "
        f"({b['raw_cycles']} cycles; cnt_cycles {b['raw_cnt_cycles']})",
        f"  cocotb     {b['cocotb_cycles_per_second'] / 1e6:.3f} M cycles/s during compute "
        f"({b['cocotb_cycles']} cycles; results {'PASS' if b['passed'] else 'FAIL'})",
        f"  ratio      {b['ratio']:.2f} of raw",
    ]
    return "\n".join(lines)


def main(argv=None):
    p = ArgumentParser(prog="python -m sim.bench",
                       description="Measure the simulation speed of the cocotb flow against "
                                   "raw Verilator.")
    add_config_flags(p)
    p.add_argument("--gemm", default=None, metavar="MxKxN",
                   help="GEMM shape of each run [default: m_max x k_max x n_max]")
    p.add_argument("--reps", default="3", help="GEMMs per cocotb run [default: 3]")
    p.add_argument("--cold", action="store_true", help="also time a cold build")
    p.add_argument("--public", default=None, choices=sorted(PUBLIC_MODES),
                   help="VPI visibility flags (default: depth1)")
    p.add_argument("--cocotb-clock", action="store_true",
                   help="drive clk from cocotb's Clock instead of the HDL wrapper")
    p.add_argument("--target", default="0.5", help="required cocotb/raw ratio [0.5]")
    p.add_argument("--cached-target", default="1.0",
                   help="longest acceptable cached build in seconds [1.0]")
    p.add_argument("--gen-target", default="20",
                   help="longest acceptable generation in seconds [20]")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")
    args = p.parse_args(argv)
    config = refuse_modes(config_from_args(args), "python -m sim.bench")
    gemm = parse_gemm(args.gemm) if args.gemm else (config.m_max, config.k_max, config.n_max)
    try:
        config.check_gemm(*gemm)
        reps, target = int(args.reps), float(args.target)
        cached_target, gen_target = float(args.cached_target), float(args.gen_target)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    b = bench(config, *gemm, reps=reps, cold=args.cold, public=args.public,
              hdl_clock=not args.cocotb_clock)
    print(format_bench(b))
    if args.json:
        atomic_write(args.json, json.dumps(b, indent=1))
    ok = (b["ratio"] >= target and b["passed"]
          and b["cached_build_seconds"] <= cached_target
          and b["generate_seconds"] <= gen_target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
