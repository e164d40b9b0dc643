"""Simulate GEMMs on the generated engine and check them bit for bit against golden.

:func:`simulate` is the API that ``python -m sim``, the regressions and the design-space
sweep call.  It generates the engine (``gen.generate``), builds it once per Verilog hash
(:mod:`sim.build`), precomputes the buffer words and the golden results with numpy, runs
the cocotb testbench (:mod:`sim.tb`) once for all jobs, and turns the counters into the
cycle and utilization report.  GEMMs larger than the engine's buffers are split into
engine runs along M and N (never K).
"""

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from golden import counters as counter_table
from golden.config import Config
from golden.gemm import EncodedOperands, gemm_encoded
from golden.pack import WrSel, pack_operands
from golden.skip import skip_tiles, weight_tile_mask
from nmmx.files import atomic_open, atomic_write

from hw.registry import hardware
from synth.memory import gemm_energy

from .build import build_model, build_root, run_cocotb
from .job import Job, SimInput, SimOutput, limbs
from .stimulus import DATA_CLASSES, make_operands
from .wrapper import TIMING_ARGS, WRAPPER_TOP, clock_wrapper

__all__ = ["simulate", "simulate_cases", "Case", "engine_model", "format_report",
           "load_replay", "replay"]

#: The report keys of :func:`simulate` that ``python -m sim --json`` writes.
REPORT_KEYS = ("passed", "mismatches", "outputs", "cycles", "model_cycles",
               "scalesim_cycles", "issued_macs", "utilization", "useful_utilization",
               "effective_macs_per_cycle",
               "peak_macs_per_cycle", "sim_cycles_per_second", "build_seconds", "seed",
               "config", "counters", "model_counters", "counters_match_model",
               "host_writes_match_model", "buffer_accesses", "buffer_access_source",
               "buffer_energy", "buffer_pj_per_mac")


class Case:
    """One GEMM to simulate.

    Parameters
    ----------
    m, k, n : int
        GEMM shape; M and N may exceed the engine's maxima (split into runs), K may not.
    data : str
        Stimulus class (:data:`sim.stimulus.DATA_CLASSES`).
    seed : int
    enc : golden.gemm.EncodedOperands, optional
        Operands to use instead of generating them (replay).
    mode : golden.config.Mode or str, optional
        The mode of the GEMM on a unified engine (required there; ``None`` otherwise).
    """

    def __init__(self, m, k, n, *, data="gaussian", seed=0, enc=None, mode=None):
        self.m, self.k, self.n = m, k, n
        self.data, self.seed, self.enc, self.mode = data, seed, enc, mode


def _one(config, case):
    """The one-mode config a case runs in: ``config.mode(case.mode)`` on a unified
    engine (its golden result, cycle model and slots), else ``config``."""
    return config.mode(case.mode) if config.unified else config


def _check_case(config, case):
    for name, v in (("M", case.m), ("K", case.k), ("N", case.n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"GEMM {name} must be a whole number, not {v!r}")
        if v < 1:
            raise ValueError(f"GEMM {name} must be at least 1, not {v}")
    if case.k > config.k_max:
        raise ValueError(f"GEMM K={case.k} does not fit this engine (k_max={config.k_max}); "
                         f"K is never split across runs")
    if case.data not in DATA_CLASSES:
        raise ValueError(f"Stimulus class must be one of {', '.join(DATA_CLASSES)}, "
                         f"not {case.data!r}")
    if config.unified and case.mode is None:
        raise ValueError(f"A GEMM on an engine with several modes needs its mode, one of "
                         f"{', '.join(x.spec for x in config.modes)}")
    if case.mode is not None:
        config.mode(case.mode)


# -- generation and build ----------------------------------------------------------------

_generated = {}


def _generate(config):
    """Generate the engine once per process; return ``(verilog_path, ports)``: the
    top's :func:`gen.generate.top_ports`, from the engine component itself."""
    key = (str(build_root()), config)
    if key in _generated:
        return _generated[key]
    from gen.generate import generate_engine, top_ports
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    out = build_root() / "gen" / f"{config.name}_{digest.hexdigest()[:12]}"
    # generate_engine() renames both files into place only when both are whole, so a
    # worker never reads another worker's half-written file (the output is
    # deterministic, so two workers writing the same directory write the same bytes).
    verilog_path, _manifest_path, engine = generate_engine(config, out)
    _generated[key] = (verilog_path, top_ports(engine))
    return _generated[key]


def _write_if_changed(path, text):
    if path.exists() and path.read_text() == text:
        return
    atomic_write(path, text)


def engine_model(config, *, waves=False, hdl_clock=True, public=None):
    """Generate and build (or reuse) the cocotb model of ``config``'s engine.

    Parameters
    ----------
    config : Config
    waves : bool
        FST tracing (also ``WAVES=1``).
    hdl_clock : bool
        Wrap the engine in :mod:`sim.wrapper`'s clock-generating top (faster).
    public : str, optional
        :data:`sim.build.PUBLIC_MODES` key.

    Returns
    -------
    model : sim.build.Model
    verilog_path : pathlib.Path
        The generated engine Verilog.
    top : str
        The engine's module name.
    """
    from gen.generate import CLOCK
    verilog_path, ports = _generate(config)
    top = config.name
    sources = [verilog_path]
    toplevel, extra = top, ()
    if hdl_clock:
        wrap = verilog_path.with_name(f"{WRAPPER_TOP}_{top}.v")
        ports = [(p["name"], "input" if p["dir"] == "in" else "output", p["width"])
                 for p in ports]
        _write_if_changed(wrap, clock_wrapper(top, ports, clock=CLOCK["name"]))
        sources.append(wrap)
        toplevel, extra = WRAPPER_TOP, TIMING_ARGS
    model = build_model(sources, toplevel, waves=waves, public=public, extra_args=extra)
    return model, verilog_path, top


# -- jobs --------------------------------------------------------------------------------

def _sub(enc, config, i0, i1, j0, j1):
    """The operands of rows ``i0:i1`` and columns ``j0:j1`` of a GEMM."""
    return EncodedOperands(
        a_codes=np.ascontiguousarray(enc.a_codes[i0:i1]),
        a_scales=np.ascontiguousarray(enc.a_scales[i0:i1]),
        w_values=np.ascontiguousarray(enc.w_values[:, :, j0:j1]),
        w_indices=np.ascontiguousarray(enc.w_indices[:, :, j0:j1]),
        w_scales=np.ascontiguousarray(enc.w_scales[:, j0:j1]),
        m=i1 - i0, k=enc.k, n=j1 - j0)


def _cycle_limit(config, m, k, n):
    """Cycles the testbench waits for ``done`` before declaring the engine hung."""
    return 2 * config.schedule.cycles(m, k, n) + 1000


def _plan(config, case):
    """Encoded operands, golden result and per-run jobs of one case: ``(i0, i1, j0, j1,
    operands, skip)``, with ``skip`` the run's weight-tile mask (``tile_skip``; else
    None), whose skipped outputs the expected result has as zero (:mod:`golden.skip`)."""
    one = _one(config, case)
    enc = case.enc if case.enc is not None else make_operands(
        one, case.m, case.k, case.n, case.data, case.seed)
    expect = gemm_encoded(enc, one)
    jobs = []
    for i0 in range(0, case.m, config.m_max):
        i1 = min(case.m, i0 + config.m_max)
        for j0 in range(0, case.n, config.n_max):
            j1 = min(case.n, j0 + config.n_max)
            sub, skip = _sub(enc, config, i0, i1, j0, j1), None
            if config.tile_skip:
                skip = tuple(bool(s) for s in weight_tile_mask(config, sub))
                expect[i0:i1, j0:j1] = skip_tiles(config, sub, expect[i0:i1, j0:j1])
            jobs.append((i0, i1, j0, j1, sub, skip))
    return enc, expect, jobs


def simulate_cases(config, cases, *, waves=False, hdl_clock=True, public=None,
                   verbose=False, stream=None):
    """Simulate several GEMMs in one simulator run; return one report per case.

    Parameters
    ----------
    config : Config
    cases : sequence of Case
    waves, hdl_clock, public
        As :func:`engine_model`.
    verbose : bool
        Stream the simulator log.
    stream : file, optional
        Where mismatch reports go (default ``sys.stderr``).

    Returns
    -------
    list of dict
        The :func:`simulate` report of each case.

    Raises
    ------
    TypeError, ValueError
        A shape or stimulus class is invalid, or K exceeds ``k_max``.
    RuntimeError
        The build failed, or the simulator stopped without writing results.
    """
    if not isinstance(config, Config):
        raise TypeError(f"simulate needs a golden.Config, not {type(config).__name__}")
    stream = sys.stderr if stream is None else stream
    for case in cases:
        _check_case(config, case)
    model, verilog_path, top = engine_model(config, waves=waves, hdl_clock=hdl_clock,
                                            public=public)
    plans = [_plan(config, case) for case in cases]
    jobs, host_writes = [], []
    for case, (_enc, expect, plan) in zip(cases, plans):
        one = _one(config, case)
        mode = config.mode_index(case.mode) if config.unified else 0
        for (i0, i1, j0, j1, sub, _skip) in plan:
            w = pack_operands(config, sub, case.mode if config.unified else None)
            # The words the testbench writes into each buffer (one per wr_en cycle).
            host_writes.append({name: int((w.sel == WrSel.of(name)).sum())
                                for name in config.host_buffers if name != "c"})
            jobs.append(Job(shape=(sub.m, sub.k, sub.n), mode=mode,
                            limit=_cycle_limit(one, sub.m, sub.k, sub.n),
                            sel=w.sel.astype(np.int64), bank=w.bank, addr=w.addr,
                            data=limbs(w.data, config.wr_data_bits),
                            expect=np.ascontiguousarray(expect[i0:i1, j0:j1]).view(np.uint32)))
    io_dir = model.build_dir / "io"
    io_dir.mkdir(exist_ok=True)
    stem = f"{os.getpid()}_{time.time_ns()}"
    src, dst = io_dir / f"{stem}_in.npz", io_dir / f"{stem}_out.npz"
    names = counter_table.names(config)
    SimInput(config=config, hdl_clock=bool(hdl_clock), counters=names,
             jobs=tuple(jobs)).save(src)
    t0 = time.perf_counter()
    run_dir, _ok = run_cocotb(model, "sim.tb", verbose=verbose,
                              extra_env={"NMMX_SIM_IN": str(src), "NMMX_SIM_OUT": str(dst)})
    wall = time.perf_counter() - t0
    if not dst.exists():
        log = run_dir / "sim.log"
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise RuntimeError(f"The simulation of {config.name} wrote no results; see {log}"
                           f"\n{tail}")
    results = SimOutput.load(dst).results
    src.unlink()
    dst.unlink()
    reports = []
    j = 0
    for case, (enc, expect, jobs) in zip(cases, plans):
        got = np.zeros((case.m, case.n), np.uint32)
        runs = []
        hung = False
        for (i0, i1, j0, j1, sub, skip) in jobs:
            if j >= len(results):
                # The engine hung (or an earlier job did): no results for this run.
                hung = True
                got[i0:i1, j0:j1] = ~np.ascontiguousarray(expect[i0:i1, j0:j1]).view(np.uint32)
                runs.append({"shape": (sub.m, sub.k, sub.n),
                             "counters": {name: 0 for name in names},
                             "host_writes": host_writes[j],
                             "seconds": 0.0, "sim_cycles": 0, "load_seconds": 0.0})
            else:
                res = results[j]
                got[i0:i1, j0:j1] = res.c
                runs.append({"shape": (sub.m, sub.k, sub.n),
                             "counters": dict(zip(names, (int(v) for v in res.counters))),
                             "host_writes": host_writes[j],
                             "seconds": res.seconds, "sim_cycles": res.sim_cycles,
                             "load_seconds": res.load_seconds})
            if skip is not None:
                runs[-1]["skip"] = list(skip)
            j += 1
        report = _report(config, case, enc, expect, got, runs, model, wall)
        report["hung"] = hung
        if hung:
            report["passed"] = False
        report["run_dir"] = str(run_dir)
        if model.waves:
            fst = run_dir / "dump.fst"
            report["waves"] = str(fst if fst.exists() else run_dir / "dump.vcd")
        if not report["passed"]:
            report["replay"] = str(_write_replay(config, case, enc, run_dir))
            print(_mismatch_text(config, case, enc, expect, got, report), file=stream)
        reports.append(report)
    if all(r["passed"] for r in reports) and not model.waves:
        # Long sweeps run thousands of GEMMs: keep run directories only when they hold
        # something to look at (waves, or the logs and replay files of a failure).
        shutil.rmtree(run_dir, ignore_errors=True)
        for r in reports:
            del r["run_dir"]
    return reports


def simulate(config, m, k, n, *, seed=0, data="gaussian", waves=False, hdl_clock=True,
             public=None, verbose=False, enc=None, mode=None):
    """Simulate one ``m x k x n`` GEMM on ``config``'s engine; return its report.

    Parameters
    ----------
    config : Config
    m, k, n : int
        GEMM shape: M and N may exceed ``m_max``/``n_max`` (the GEMM is split into engine
        runs along M and N and the report covers the whole GEMM); K may not.
    seed : int
        Stimulus seed (printed in every report).
    data : str
        Stimulus class (:data:`sim.stimulus.DATA_CLASSES`).
    waves : bool
        Record FST waves (also ``WAVES=1``); the report names the file.
    hdl_clock, public, verbose
        See :func:`simulate_cases`.
    enc : golden.gemm.EncodedOperands, optional
        Use these operands instead of generating them.
    mode : golden.config.Mode or str, optional
        The GEMM's mode on a unified engine (then required).

    Returns
    -------
    dict
        :data:`REPORT_KEYS` plus ``data``, ``gemm``, ``stall_cycles``, ``tiles``, ``runs``,
        ``cycles_match_model``, ``build_cached``, ``c_bits`` (the engine's C as uint32
        bit patterns, shape (m, n)); ``run_dir`` (logs) and ``replay`` on
        failure, ``run_dir`` and ``waves`` with waves.  ``counters`` holds every
        counter of :func:`golden.counters.names` summed over the runs, ``buffer_accesses``
        and ``buffer_energy`` the GEMM's buffer word accesses and their energy in pJ
        (:func:`synth.memory.gemm_energy`, CACTI 7 at 45 nm), ``buffer_pj_per_mac`` that
        energy over the GEMM's ``M * K * N`` dense-equivalent MACs.  ``passed`` requires every
        output bit-exact, every counter equal to :func:`golden.counters.expected` (the
        cycle and buffer-access model) and the testbench's buffer writes equal to the
        model's host writes.

    Raises
    ------
    TypeError, ValueError
        Bad shape or stimulus class, or K above ``k_max``.
    """
    return simulate_cases(config, [Case(m, k, n, data=data, seed=seed, enc=enc, mode=mode)],
                          waves=waves, hdl_clock=hdl_clock, public=public,
                          verbose=verbose)[0]


# -- reports -----------------------------------------------------------------------------

def _report(config, case, enc, expect, got, runs, model, wall):
    engine_config, config = config, _one(config, case)
    exp_bits = np.ascontiguousarray(expect).view(np.uint32)
    mismatches = int((exp_bits != got).sum())
    sched = engine_config.schedule.mode(case.mode) if engine_config.unified else None
    counts = _counter_report(config, runs, engine_config, schedule=sched)
    cycles, issued, stall, tiles = (counts["counters"][name]
                                    for name in counter_table.RUN_COUNTERS)
    model_cycles = counts["model_counters"]["cnt_cycles"]
    scalesim = sum(config.schedule.scalesim_cycles(*r["shape"]) for r in runs)
    compute_s = sum(r["seconds"] for r in runs)
    sim_cycles = sum(r["sim_cycles"] for r in runs)
    slots = config.multiplier_slots
    extra = {}
    if config.tile_skip:
        # Output tiles skipped: every tile row of a run repeats its weight-tile mask.
        extra["skipped_tiles"] = sum(-(-r["shape"][0] // config.rows) * sum(r["skip"])
                                     for r in runs)
    return {**extra,
        "passed": (mismatches == 0 and counts["counters_match_model"]
                   and counts["host_writes_match_model"]),
        "mismatches": mismatches,
        "outputs": int(exp_bits.size),
        "cycles": cycles,
        "model_cycles": model_cycles,
        "scalesim_cycles": scalesim,
        "issued_macs": issued,
        # Issued slots (K padding counts as busy) and useful dense-equivalent MACs of
        # the GEMM as asked against the peak (Schedule.useful_utilization's definition).
        "utilization": issued / (slots * cycles) if cycles else 0.0,
        "useful_utilization": (case.m * case.k * case.n
                               / (config.peak_macs_per_cycle * cycles)) if cycles else 0.0,
        "effective_macs_per_cycle": case.m * case.k * case.n / cycles if cycles else 0.0,
        "peak_macs_per_cycle": config.peak_macs_per_cycle,
        "sim_cycles_per_second": sim_cycles / compute_s if compute_s else 0.0,
        "build_seconds": model.build_seconds,
        "seed": case.seed,
        "config": engine_config.to_dict(),
        **({"mode": config.all_modes[0].spec} if engine_config.unified else {}),
        "data": case.data,
        "gemm": [case.m, case.k, case.n],
        "stall_cycles": stall,
        "tiles": tiles,
        "runs": runs,
        "cycles_match_model": cycles == model_cycles,
        "build_cached": model.cached,
        "cold_build_seconds": model.cold_build_seconds,
        "load_seconds": sum(r["load_seconds"] for r in runs),
        "wall_seconds": wall,
        "c_bits": got,
        **counts,
        "buffer_pj_per_mac": counts["buffer_energy"]["pj"] / (case.m * case.k * case.n),
    }


def _counter_report(config, runs, engine_config=None, schedule=None):
    """The counters of a GEMM's runs against the model, and its buffer accesses.

    Returns ``counters`` and ``model_counters`` (name -> sum over the runs; every
    counter of :func:`golden.counters.names`), ``counters_match_model``,
    ``host_writes_match_model`` (the words the testbench wrote into each buffer against
    the model's host writes), ``buffer_accesses`` (buffer -> reads, writes: the engine's
    from its counters, the host's writes as written, the host's C reads from the model),
    ``buffer_access_source`` (where each figure came from) and ``buffer_energy``
    (:func:`synth.memory.gemm_energy` of those accesses).  ``config`` gives the model
    (a unified engine's one-mode config), ``engine_config`` (default ``config``) the
    buffers the energy is priced on; ``schedule`` (default ``config.schedule``) the
    cycle model (a unified engine's mode: ``ModesSchedule.mode``, the unified latency).
    """
    sched = config.schedule if schedule is None else schedule
    names = counter_table.names(config)
    got = {name: sum(r["counters"][name] for r in runs) for name in names}
    model = dict.fromkeys(names, 0)
    accesses = {}
    for r in runs:
        for name, v in counter_table.expected(config, *r["shape"], r.get("skip"),
                                              schedule=sched).items():
            model[name] += v
        for buf, acc in sched.buffer_accesses(*r["shape"], r.get("skip")).items():
            for kind, v in acc.items():
                accesses.setdefault(buf, {"reads": 0, "writes": 0})[kind] += v
    model_host = {buf: accesses[buf]["writes"] for buf in runs[0]["host_writes"]}
    host = {buf: sum(r["host_writes"][buf] for r in runs) for buf in model_host}
    source = {buf: {"reads": "model", "writes": "model"} for buf in accesses}
    for buf, words in host.items():
        accesses[buf]["writes"], source[buf]["writes"] = words, "host writes"
    source["c"]["reads"] = "model (host C reads)"
    for name in counter_table.access_names(config):
        buf, kind = counter_table.ACCESS_COUNTERS[name]
        accesses[buf][kind], source[buf][kind] = got[name], name
    engine_config = config if engine_config is None else engine_config
    buffers = hardware(engine_config).engine.buffers_of(engine_config)
    return {"counters": got, "model_counters": model, "counters_match_model": got == model,
            "host_writes_match_model": host == model_host, "buffer_accesses": accesses,
            "buffer_access_source": source, "buffer_energy": gemm_energy(buffers, accesses)}


def format_report(r):
    """One readable summary of a :func:`simulate` report."""
    engine = Config.from_dict(r["config"])
    cfg = engine.mode(r["mode"]) if "mode" in r else engine
    m, k, n = r["gemm"]
    mode = f"  mode {r['mode']}" if "mode" in r else ""
    lines = [
        f"{'PASS' if r['passed'] else 'FAIL'}  {engine.name}{mode}  gemm {m}x{k}x{n}  "
        f"data={r['data']} seed={r['seed']}",
        f"  outputs     {r['outputs']} compared bit for bit, {r['mismatches']} mismatches",
        f"  cycles      {r['cycles']} (model {r['model_cycles']}"
        f"{', MATCH' if r['cycles_match_model'] else ', MISMATCH'}; "
        f"SCALE-Sim {cfg.dataflow.upper()} {r['scalesim_cycles']}) "
        f"in {len(r['runs'])} engine run(s)",
        f"  utilization {r['utilization']:.4f} of {cfg.rows}x{cfg.cols}x{cfg.n_keep} "
        f"multiplier slots issued  (issued {r['issued_macs']}, stall cycles "
        f"{r['stall_cycles']}); {r['useful_utilization']:.4f} useful (M*K*N over peak "
        f"MACs/cycle x cycles, padding excluded)",
        f"  MACs/cycle  {r['effective_macs_per_cycle']:.2f} dense-equivalent "
        f"(peak {r['peak_macs_per_cycle']})",
        f"  speed       {r['sim_cycles_per_second'] / 1e6:.3f} M simulated cycles/s during "
        f"compute; load {r['load_seconds']:.2f} s",
        f"  build       {r['build_seconds']:.2f} s "
        f"({'cached, cold build took %.1f s' % r['cold_build_seconds'] if r['build_cached'] else 'cold'})",
    ]
    if "skipped_tiles" in r:
        lines.append(f"  tile skip   {r['skipped_tiles']} of {r['tiles']} output tiles "
                     f"skipped (all-zero weight tiles)")
    e = r["buffer_energy"]
    lines.append(f"  buffers     {e['pj']:.1f} pJ per GEMM, {r['buffer_pj_per_mac']:.4f} pJ per "
                 f"dense-equivalent MAC ({e['model']}, {e['node_nm']} nm; "
                 + ", ".join(f"{name} {acc['reads']} rd {acc['writes']} wr"
                             for name, acc in r["buffer_accesses"].items()) + ")")
    lines.append(f"  counters    {len(r['counters'])} "
                 f"{'equal the model' if r['counters_match_model'] else 'DIFFER from the model'}"
                 f"; host writes {'match' if r['host_writes_match_model'] else 'DIFFER'}")
    if r.get("waves"):
        lines.append(f"  waves       {r['waves']}")
    if r.get("replay"):
        lines.append(f"  replay      python -m sim --replay {r['replay']}")
    return "\n".join(lines)


def _mismatch_text(config, case, enc, expect, got, report):
    engine_config, config = config, _one(config, case)
    exp_bits = np.ascontiguousarray(expect).view(np.uint32)
    bad = np.argwhere(exp_bits != got)
    mode = f" mode={case.mode}" if engine_config.unified else ""
    lines = [f"MISMATCH seed={case.seed} data={case.data} gemm={case.m}x{case.k}x{case.n}"
             f"{mode} config={json.dumps(engine_config.to_dict())}"]
    if report["mismatches"]:
        i, j = (int(v) for v in bad[0])
        _, terms = gemm_encoded(enc, config, terms=True)
        t = np.ascontiguousarray(terms[:, i, j])
        tb = t.view(np.uint32) if t.dtype == np.float32 else t.astype(np.int64) & 0xFFFFFFFF
        lines.append(f"  first mismatch at (i={i}, j={j}): expected 0x{int(exp_bits[i, j]):08x} "
                     f"({expect[i, j]!r}), actual 0x{int(got[i, j]):08x}; "
                     f"{report['mismatches']} of {report['outputs']} outputs differ")
        lines.append("  per-block terms: " + ", ".join(
            f"b{b}=0x{int(x):08x}({v!r})" for b, (x, v) in enumerate(zip(tb, t.tolist()))))
    if report.get("hung"):
        lines.append("  done never rose within 2 * config.schedule.cycles + 1000 cycles; outputs "
                     "of the hung runs count as mismatches")
    for name, v in report["counters"].items():
        if v != report["model_counters"][name]:
            lines.append(f"  {name} {v} != model {report['model_counters'][name]} "
                         f"(golden.counters.expected)")
    if not report["host_writes_match_model"]:
        lines.append("  the testbench's buffer writes differ from the model's host writes")
    lines.append(f"  reproduce: python -m sim --replay {report['replay']}")
    return "\n".join(lines)


# -- replay files ------------------------------------------------------------------------

def _write_replay(config, case, enc, run_dir):
    path = Path(run_dir) / f"replay_{config.name}_{case.data}_seed{case.seed}.npz"
    with atomic_open(path, "wb") as f:
        _savez_replay(f, config, case, enc)
    return path


def _savez_replay(f, config, case, enc):
    mode = {"mode": str(case.mode)} if config.unified else {}
    np.savez(f, config=json.dumps(config.to_dict()), data=case.data, seed=case.seed, **mode,
             shape=np.array([enc.m, enc.k, enc.n], np.int64), a_codes=enc.a_codes,
             a_scales=enc.a_scales, w_values=enc.w_values, w_indices=enc.w_indices,
             w_scales=enc.w_scales)


#: Arrays of a replay file (besides ``config``, ``data``, ``seed`` and ``shape``).
_REPLAY_OPERANDS = ("a_codes", "a_scales", "w_values", "w_indices", "w_scales")


def _replay_arrays(path, shown):
    """Every array of the replay file at ``path`` by name, read eagerly (a damaged member
    shows up here, not halfway through a simulation).  Never unpickles."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise ValueError(f"Replay file {shown} does not exist") from None
    except OSError as e:
        raise ValueError(f"Replay file {shown} cannot be read ({e.strerror})") from None
    if not os.path.isfile(path):
        raise ValueError(f"Replay file {shown} is not a regular file")
    if size == 0:
        raise ValueError(f"Replay file {shown} is empty")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ValueError(f"Replay file {shown} cannot be read ({e.strerror})") from None
    if magic != b"PK\x03\x04":
        raise ValueError(f"Replay file {shown} is not an .npz archive written by "
                         f"python -m sim")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except Exception:  # zipfile, zlib, numpy: many kinds for a truncated or damaged file
        raise ValueError(f"Replay file {shown} is damaged (truncated, or an array in it "
                         f"cannot be read)") from None


def load_replay(path):
    """Read a replay file; return ``(config, Case)`` with the stored operands.

    Everything is checked here, before any work: the archive, the config (a JSON object
    that :class:`golden.Config` accepts), the GEMM shape (K at most ``k_max``), the
    stimulus class and seed, and every operand array against the config
    (:meth:`golden.gemm.EncodedOperands.validate`).

    Raises
    ------
    ValueError
        The file is not a valid nmmx replay file; one sentence naming the file.
    """
    shown = repr(str(path))
    arrays = _replay_arrays(path, shown)
    missing = [k for k in ("config", "data", "seed", "shape", *_REPLAY_OPERANDS)
               if k not in arrays]
    if missing:
        raise ValueError(f"Replay file {shown} has no {missing[0]!r} entry, so it was not "
                         f"written by python -m sim")
    text = arrays["config"]
    if text.shape != () or text.dtype.kind != "U":
        raise ValueError(f"Replay file {shown} stores its config as {text.dtype} "
                         f"{text.shape}, not as JSON text")
    try:
        raw = json.loads(str(text))
    except ValueError:
        raise ValueError(f"Replay file {shown} has a config that is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ValueError(f"Replay file {shown} has a config that is a JSON "
                         f"{type(raw).__name__}, not an object")
    try:
        config = Config.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Replay file {shown} has a bad config ({e})") from None
    shape = arrays["shape"]
    if shape.shape != (3,) or shape.dtype.kind not in "iu" or (shape < 1).any():
        raise ValueError(f"Replay file {shown} must store the GEMM shape as three "
                         f"positive whole numbers, not {shape.tolist()!r}")
    m, k, n = (int(v) for v in shape)
    if k > config.k_max:
        raise ValueError(f"Replay file {shown} holds a GEMM with K={k}, more than its "
                         f"config's k_max={config.k_max}")
    data, seed = arrays["data"], arrays["seed"]
    if data.shape != () or str(data) not in DATA_CLASSES:
        raise ValueError(f"Replay file {shown} names the stimulus class {str(data)!r}, "
                         f"not one of {', '.join(DATA_CLASSES)}")
    if seed.shape != () or seed.dtype.kind not in "iu" or int(seed) < 0:
        raise ValueError(f"Replay file {shown} must store the seed as a whole number "
                         f"at least 0, not {seed.tolist()!r}")
    mode = None
    if config.unified:
        text = arrays.get("mode")
        try:
            if text is None or text.shape != () or text.dtype.kind != "U":
                raise ValueError("no mode entry")
            mode = config.mode(str(text)).all_modes[0]
        except ValueError as e:
            raise ValueError(f"Replay file {shown} has an engine with several modes but "
                             f"no valid mode of the GEMM ({e})") from None
    enc = EncodedOperands(**{name: arrays[name] for name in _REPLAY_OPERANDS},
                          m=m, k=k, n=n)
    try:
        enc.validate(config.mode(mode) if mode is not None else config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Replay file {shown} holds operands that do not fit its config "
                         f"({e})") from None
    return config, Case(m, k, n, data=str(data), seed=int(seed), enc=enc, mode=mode)


def replay(path, **kwargs):
    """Re-run the GEMM stored in a replay file; return its report."""
    config, case = load_replay(path)
    return simulate_cases(config, [case], **kwargs)[0]
