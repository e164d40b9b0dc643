"""``python -m sim``: simulate one GEMM on a generated engine, bit-exact against golden.

Prints one summary (PASS/FAIL, mismatches, cycles against the model, utilization,
dense-equivalent MACs per cycle, simulation speed, build time, buffer accesses and their
energy per GEMM).  Exit status: 0 when every output matches and every counter (cycles,
issued slots, stalls, tiles, buffer accesses) equals the model, 1 otherwise, 2 on bad
arguments.
"""

import json
import sys

from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, cli_main,
                       config_from_args, parse_seed, parse_shape)
from nmmx.files import atomic_write, check_output_file

__all__ = ["main", "parse_gemm"]


def parse_gemm(text):
    """``"64x256x32"`` -> ``(64, 256, 32)``; raise :class:`UsageError` naming the text."""
    try:
        return parse_shape(text)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--gemm: {e}") from None


def _parser():
    from .stimulus import DATA_CLASSES
    p = ArgumentParser(
        prog="python -m sim",
        description="Simulate one GEMM on a generated engine in Verilator, bit for bit "
                    "against the golden model.",
        examples=["python -m sim --rows 4 --cols 4 --format mxfp8_e4m3 --m-max 16 "
                  "--k-max 512 --n-max 16 --gemm 16x512x16 --data heavy",
                  "python -m sim --replay replay_nmmx_os_4x4_mxfp8e4m3_2of4_heavy_seed0.npz",
                  "    re-runs the GEMM that a failing run stored (its summary names the "
                  "file)"])
    add_config_flags(p)
    g = p.add_argument_group("simulation")
    g.add_argument("--gemm", default=None, metavar="MxKxN",
                   help="GEMM shape; M and N may exceed the engine maxima (split into runs), "
                        "K may not [default: m_max x k_max x n_max]")
    g.add_argument("--seed", default="0", help="stimulus seed [default: 0]")
    g.add_argument("--data", default="gaussian", choices=list(DATA_CLASSES),
                   help="stimulus class [default: gaussian]")
    g.add_argument("--mode", default=None, metavar="SPEC",
                   help="run one of the --modes (e.g. mxfp4_e2m1@4:4) [default: each mode "
                        "in turn, then a sequence of GEMMs that switches modes]")
    g.add_argument("--waves", action="store_true",
                   help="record waves (also WAVES=1): FST, or VCD where the lz4 headers "
                        "are missing; the summary names the file")
    g.add_argument("--json", default=None, metavar="FILE",
                   help="also write the report as JSON")
    g.add_argument("--replay", default=None, metavar="FILE",
                   help="re-run the GEMM stored in a replay file written by a failing run "
                        "(configuration flags are then ignored)")
    g.add_argument("--verbose", action="store_true", help="stream build and simulator logs")
    return p


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    from .run import format_report, load_replay, simulate_cases, Case
    if args.json is not None:
        # Checked before the simulation; a missing directory is created (as gen -o does).
        check_output_file(args.json, what="--json file")
    seed = parse_seed(args.seed)
    if args.replay:
        try:
            config, case = load_replay(args.replay)
        except ValueError as e:
            raise UsageError(str(e)) from None
    else:
        config = config_from_args(args)
        m, k, n = (parse_gemm(args.gemm) if args.gemm is not None
                   else (config.m_max, config.k_max, config.n_max))
        if k > config.k_max:
            raise UsageError(f"GEMM K={k} does not fit this engine (k_max={config.k_max}); "
                             f"K is never split across runs")
        case = Case(m, k, n, data=args.data, seed=seed)
    if args.mode is not None and not args.replay:
        try:
            mode = config.mode(args.mode).all_modes[0]
        except ValueError as e:
            raise UsageError(f"--mode: {e}") from None
    if config.unified and not args.replay:
        return _main_modes(config, case, args)
    report = simulate_cases(config, [case], waves=args.waves, verbose=args.verbose)[0]
    print(format_report(report))
    if args.json:
        atomic_write(args.json, json.dumps(_json_entry(report), indent=1))
    return 0 if report["passed"] else 1


def _json_entry(report):
    from .run import REPORT_KEYS
    out = {key: report[key] for key in REPORT_KEYS}
    out.update({key: report[key] for key in ("mode", "data", "gemm", "stall_cycles", "tiles",
                                             "skipped_tiles", "cycles_match_model")
                if key in report})
    for key in ("replay", "waves"):
        if key in report:
            out[key] = report[key]
    return out


def switching_sequence(config):
    """The modes of the switching sequence that follows the per-mode runs (which end in
    the last mode): an Eulerian circuit of the complete directed graph of the modes from
    the last mode, so every GEMM switches and every ordered pair of modes switches once
    (``n*(n-1)`` GEMMs)."""
    modes = list(config.modes)
    n = len(modes)
    unused = {i: [j for j in range(n) if j != i] for i in range(n)}
    stack, circuit = [n - 1], []
    while stack:
        v = stack[-1]
        if unused[v]:
            stack.append(unused[v].pop(0))
        else:
            circuit.append(stack.pop())
    return [modes[i] for i in circuit[::-1][1:]]


def _main_modes(config, case, args):
    """A unified engine: one mode (``--mode``), or each mode in turn and then the
    switching sequence, all in one simulator run (no reset between GEMMs)."""
    from .run import Case, format_report, simulate_cases
    if args.mode is not None:
        per_mode = [config.mode(args.mode).all_modes[0]]
        sequence = []
    else:
        per_mode, sequence = list(config.modes), switching_sequence(config)
    cases = [Case(case.m, case.k, case.n, data=case.data, seed=case.seed, mode=x)
             for x in per_mode]
    # The sequence runs smaller GEMMs (a quarter of K, at least one block) with new seeds.
    k_seq = min(case.k, max(config.block_size, case.k // 4))
    cases += [Case(case.m, k_seq, case.n, data=case.data, seed=case.seed + 1 + i, mode=x)
              for i, x in enumerate(sequence)]
    reports = simulate_cases(config, cases, waves=args.waves, verbose=args.verbose)
    for r in reports[:len(per_mode)]:
        print(format_report(r))
    seq = reports[len(per_mode):]
    if seq:
        cycles = sum(r["cycles"] for r in seq)
        model = config.schedule.sequence_cycles(
            [(r["mode"], *r["gemm"]) for r in seq])
        ok = all(r["passed"] for r in seq) and cycles == model
        print(f"{'PASS' if ok else 'FAIL'}  switching sequence  "
              + " -> ".join(r["mode"] for r in seq)
              + f"  gemm {case.m}x{k_seq}x{case.n} each, no reset")
        print(f"  outputs     {sum(r['outputs'] for r in seq)} compared bit for bit, "
              f"{sum(r['mismatches'] for r in seq)} mismatches")
        print(f"  cycles      {cycles} (model {model} = the sum of each GEMM's own mode, "
              f"{'MATCH' if cycles == model else 'MISMATCH'}; a switch costs "
              f"{config.schedule.switch_cost} cycles beyond the fill and drain every GEMM pays)")
        for r in seq:
            if r.get("replay"):
                print(f"  replay      python -m sim --replay {r['replay']}")
    passed = all(r["passed"] for r in reports)
    if args.json:
        out = {"passed": passed, "config": config.to_dict(),
               "modes": {r["mode"]: _json_entry(r) for r in reports[:len(per_mode)]}}
        if seq:
            out["switching"] = {
                "passed": all(r["passed"] for r in seq), "cycles": cycles,
                "model_cycles": model, "switch_cost": config.schedule.switch_cost,
                "runs": [_json_entry(r) for r in seq]}
        atomic_write(args.json, json.dumps(out, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(cli_main(main, interrupted="no result was written; finished Verilator builds "
                                        "are cached, so run the same command again"))
