"""Tests of the design-space study (``python -m dse``).

Sweep-machinery tests inject a fake area function (synthesis is slow); one test runs
the real synthesis flow on the smallest config.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nmmx.flags import run_cli
from golden.config import Config
from dse import data, sweep
from dse.__main__ import main, read_sweep_file
from dse.metrics import ErrorStats, error_metrics, pareto_front
from dse.sweep import Settings, run_sweep, point_key

# Small numerics so that each point takes milliseconds.
FAST = ["--eval-shape", "8x64x8", "--gemm", "8x64x8,16x128x16", "--no-progress"]


def fake_area(config, top="engine"):
    """Deterministic stand-in for ``synth.estimate.estimate_area`` (no Yosys)."""
    pe = {"multipliers": 30.0 * config.n_keep * config.a_fmt.bits * config.w_fmt.bits / 8,
          "sparse_select": 0.0 if config.dense else 20.0 * config.m_group,
          "scale_and_convert": 150.0, "accumulators": 200.0, "pipeline_registers": 40.0,
          "other": 5.0}
    pes = config.rows * config.cols
    logic = pes * sum(pe.values()) + 500.0
    bits = 1024 * (config.a_fmt.bits + config.w_fmt.bits)
    return {"total_ge": logic + 1.5 * bits, "logic_ge": logic, "buffer_bits": bits,
            "buffer_ge": 1.5 * bits, "transistors": int(4 * logic), "yosys_seconds": 0.0,
            "pe_breakdown": pe,
            "modules": {"PE": {"count": pes, "ge": sum(pe.values()),
                               "ge_total": pes * sum(pe.values()), "class": "PE"}}}


class CountingArea:
    def __init__(self):
        self.calls = []

    def __call__(self, config, top="engine"):
        self.calls.append(config.name)
        return fake_area(config, top)


def agreeing_simulate(config, m, k, n, *, seed):
    return {"passed": True, "mismatches": 0, "cycles": config.schedule.cycles(m, k, n),
            "model_cycles": config.schedule.cycles(m, k, n),
            "utilization": config.schedule.utilization(m, k, n)}


def disagreeing_simulate(config, m, k, n, *, seed):
    res = agreeing_simulate(config, m, k, n, seed=seed)
    if config.sparsity == (1, 4):
        res["cycles"] += 1
    return res


def _run(argv, capsys, **kw):
    code = run_cli(lambda a: main(a, **kw), argv)
    return code, capsys.readouterr().err


# -- error metrics ------------------------------------------------------------------------

def test_error_metrics_hand_computed():
    # noise = 1^2 = 1, signal = 3^2 + 4^2 = 25.
    m = error_metrics([3.0, 4.0], [3.0, 5.0])
    assert m["rel_fro"] == pytest.approx(0.2)
    assert m["max_abs"] == 1.0
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(25.0))
    # noise = 0.5^2 + 2^2 = 4.25, signal = 1 + 4 + 4 = 9.
    m = error_metrics(np.array([[1.0, -2.0], [0.0, 2.0]]), np.array([[1.5, -2.0], [2.0, 2.0]]))
    assert m["rel_fro"] == pytest.approx(math.sqrt(4.25 / 9))
    assert m["max_abs"] == 2.0
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(9 / 4.25))


def test_error_metrics_edge_cases():
    exact = error_metrics([1.0, -2.0], [1.0, -2.0])
    assert exact == {"rel_fro": 0.0, "max_abs": 0.0, "sqnr_db": math.inf}
    assert error_metrics([0.0], [0.0])["rel_fro"] == 0.0
    assert error_metrics([0.0], [1.0])["rel_fro"] == math.inf
    with pytest.raises(ValueError, match=r"^Error metrics need equal shapes, not \(2,\) and "
                                         r"\(3,\)$"):
        error_metrics([1.0, 2.0], [1.0, 2.0, 3.0])


def test_error_stats_pool_like_concatenation():
    rng = np.random.default_rng(5)
    r1, r2 = rng.standard_normal(10), rng.standard_normal((3, 4))
    a1, a2 = r1 + 0.1 * rng.standard_normal(10), r2 + 0.3 * rng.standard_normal((3, 4))
    pooled = ErrorStats().add(r1, a1).add(r2, a2).as_dict()
    joint = error_metrics(np.concatenate([r1, r2.ravel()]), np.concatenate([a1, a2.ravel()]))
    for k in joint:
        assert pooled[k] == pytest.approx(joint[k])


def test_pareto_front_hand_made():
    pts = [{"t": 1.0, "e": 0.10},   # 0: front (lowest error)
           {"t": 2.0, "e": 0.20},   # 1: front
           {"t": 1.5, "e": 0.25},   # 2: dominated by 1
           {"t": 3.0, "e": 0.50},   # 3: front (highest throughput)
           {"t": 2.0, "e": 0.30},   # 4: dominated by 1 (same t, worse e)
           {"t": 3.0, "e": 0.50},   # 5: duplicate of 3, neither dominates the other
           {"t": math.nan, "e": 0.0}]  # 6: NaN never joins
    assert pareto_front(pts, maximize="t", minimize="e") == [0, 1, 3, 5]
    assert pareto_front([], maximize="t", minimize="e") == []


# -- numerics of one point ------------------------------------------------------------------

def test_numerics_order_and_properties():
    s = Settings(eval_shape=(16, 128, 16))
    fp8 = sweep.evaluate_numerics(Config(a_format="mxfp8_e4m3", w_format="mxfp8_e4m3",
                                         sparsity=(4, 4)), s)
    fp4 = sweep.evaluate_numerics(Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                                         sparsity=(4, 4)), s)
    sp = sweep.evaluate_numerics(Config(a_format="mxfp8_e4m3", w_format="mxfp8_e4m3",
                                        sparsity=(2, 4)), s)
    # Fewer bits and more pruning both cost accuracy.
    assert 0 < fp8["err_rel_fro"] < fp4["err_rel_fro"] < sp["err_rel_fro"]
    assert fp8["err_sqnr_db"] == pytest.approx(-20 * math.log10(fp8["err_rel_fro"]))
    # Dense points have no order study; the effective operands reproduce golden.gemm.
    assert math.isnan(fp8["pq_rel_fro"]) and math.isnan(fp8["qp_w_rel_fro"])
    for r in (fp8, fp4, sp):
        assert r["effective_check"] < 1e-5
    # Prune-then-quantize is what the engine does, so its output error is the point's.
    assert sp["pq_rel_fro"] == pytest.approx(sp["err_rel_fro"], rel=1e-4)
    assert sp["pq_w_rel_fro"] == sp["werr_rel_fro"]
    assert sp["qp_rel_fro"] > 0 and sp["qp_w_rel_fro"] > 0


def test_quantize_then_prune_is_built_from_golden():
    import golden
    w = data.synthetic_weights(64, 8, seed=3)
    qp = sweep._prune(sweep._roundtrip(w, "mxfp4_e2m1", 32, axis=0), (2, 4))
    manual = golden.prune_nm(golden.dequantize_mx(golden.quantize_mx(
        w, "mxfp4_e2m1", block_size=32, axis=0)), 2, 4, axis=0)
    np.testing.assert_array_equal(qp, manual)
    # Every group of four along K keeps at most two values.
    assert (np.count_nonzero(qp.reshape(16, 4, 8), axis=1) <= 2).all()


def test_int8_point_has_finite_error():
    r = sweep.evaluate_numerics(Config(a_format="int8", w_format="int8", sparsity=(4, 4)),
                                Settings(eval_shape=(8, 64, 8)))
    assert 0 < r["err_rel_fro"] < 0.05 and r["effective_check"] < 1e-6


# -- data -----------------------------------------------------------------------------------

def test_load_weights_formats_and_pattern(tmp_path):
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    q = rng.standard_normal((8, 64)).astype(np.float32)    # (out, in)
    k = rng.standard_normal((4, 64)).astype(np.float32)
    np.savez(tmp_path / "m.npz", q_proj=q, k_proj=k, bias=np.ones(8, np.float32))
    save_file({"layer.q_proj": q, "layer.k_proj": k}, str(tmp_path / "m.safetensors"))
    np.save(tmp_path / "single.npy", q)
    ws = data.load_weights(tmp_path / "m.npz", "q*")
    assert list(ws) == ["q_proj"]
    np.testing.assert_array_equal(ws["q_proj"], q.T)          # K x N
    ws = data.load_weights(tmp_path / "m.safetensors")
    assert list(ws) == ["layer.k_proj", "layer.q_proj"]
    assert data.load_weights(tmp_path / "single.npy")["single"].shape == (64, 8)
    with pytest.raises(ValueError, match=r"^No 2-D floating-point tensor in '.*m\.npz' "
                                         r"matches the pattern 'v\*'$"):
        data.load_weights(tmp_path / "m.npz", "v*")
    with pytest.raises(ValueError, match=r"^Weights file '.*x\.txt' must end in \.npy, \.npz, "
                                         r"\.safetensors, not '\.txt'$"):
        (tmp_path / "x.txt").write_text("1")
        data.load_weights(tmp_path / "x.txt")


def test_weights_file_drives_numerics_and_cache_key(tmp_path, capsys):
    rng = np.random.default_rng(7)
    path = tmp_path / "w.npz"
    # (out, in) = (16, 100): K=100 is cut to 96 (whole blocks of 32) and N=16 kept.
    np.savez(path, a_proj=rng.standard_normal((16, 100)).astype(np.float32),
             b_norm=rng.standard_normal((16, 100)).astype(np.float32))
    s = Settings(eval_shape=(8, 128, 32), weights=str(path), weights_pattern="*proj",
                 weights_digest=data.file_digest(path))
    ws = sweep._weight_set(s, 32)
    assert list(ws) == ["a_proj"] and ws["a_proj"].shape == (96, 16)
    cfg = Config(sparsity=(4, 4))
    r = sweep.evaluate_numerics(cfg, s)
    assert r["err_rel_fro"] != sweep.evaluate_numerics(cfg, Settings(eval_shape=(8, 128, 32)))[
        "err_rel_fro"]
    assert point_key(cfg, s) != point_key(cfg, Settings(eval_shape=(8, 128, 32)))
    out = tmp_path / "out"
    code, err = _run(["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--rows", "2",
                      "--weights", str(path), "--weights-pattern", "*proj", "-o", str(out),
                      "--no-plots"] + FAST, capsys, area_fn=fake_area)
    assert code == 0, err
    assert "tensors matching `*proj`" in (out / "report.md").read_text()


def test_synthetic_activations_have_outlier_channels():
    a = data.synthetic_activations(256, 128, "student_t", seed=1)
    g = data.synthetic_activations(256, 128, "gaussian", seed=1)
    col = np.sqrt((a.astype(np.float64) ** 2).mean(axis=0))
    assert np.sort(col)[-1] > 5 * np.median(col)
    assert np.array_equal(a, data.synthetic_activations(256, 128, "student_t", seed=1))
    assert abs(g.std() - 1) < 0.05
    with pytest.raises(ValueError, match=r"^Activation kind must be one of gaussian, "
                                         r"student_t, not 'cauchy'$"):
        data.synthetic_activations(2, 2, "cauchy", seed=0)


# -- sweep files and flags ----------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("rowz = 4\n", r"^error: Unknown key 'rowz' in sweep file '.*s\.toml'; known keys are "
                   r"a_format, attention_gemm, block_size, .*$"),
    ("rows = 'four'\n", r"^error: Key 'rows' in sweep file '.*s\.toml' must be a whole number "
                        r"or a list of whole numbers, not 'four'$"),
    ("simulate = 1\n", r"^error: Key 'simulate' in sweep file '.*s\.toml' must be true or "
                       r"false, not 1$"),
    ("rows = [4, 100]\n", r"^error: rows must be between 1 and 64, not 100$"),
    ("sparsity = ['2:4', '3:5']\n", r"^error: N:M sparsity needs M in \{1, 2, 4, 8, 16\}, "
                                    r"not 3:5$"),
    ("gemm = '64x512'\n", r"^error: --gemm: A GEMM shape must be written MxKxN with positive "
                          r"whole numbers, not '64x512'$"),
    ("gemm = '128x512x64'\n", r"^error: GEMM 128x512x64 does not fit nmmx_os_8x8_.*: GEMM "
                              r"M=128 does not fit this engine \(m_max=64\)$"),
    ("rows = [4\n", r"^error: The sweep file '.*s\.toml' is not valid TOML \(.*\)$"),
    ("[[extra]]\nseed = 3\n", r"^error: Unknown key 'seed' in \[\[extra\]\] table 1 of sweep "
                              r"file '.*s\.toml'; known keys are .*$"),
])
def test_sweep_file_errors(tmp_path, capsys, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    out = tmp_path / "out"
    code, err = _run(["--sweep", str(f), "-o", str(out)], capsys, area_fn=fake_area)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert __import__("re").match(message, err.strip()), err
    assert not out.exists()


def test_bad_flags_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(["--rows", "4,x", "-o", str(out)], capsys)
    assert (code, err.strip()) == (2, "error: --rows must be a whole number, not 'x'")
    code, err = _run(["--rows", "4"], capsys)
    assert (code, err.strip()) == (2, "error: An output directory is required (-o DIR or "
                                      "'out' in the sweep file)")
    code, err = _run(["--weights", str(tmp_path / "none.npz"), "-o", str(out)], capsys)
    assert code == 2 and err.strip().endswith("none.npz' does not exist")
    assert not out.exists()


def test_sweep_file_union_with_mixed_pair(tmp_path):
    from dse.__main__ import prepare
    f = tmp_path / "s.toml"
    f.write_text('format = ["mxfp8_e4m3", "mxfp4_e2m1"]\nsparsity = ["4:4", "2:4"]\n'
                 'rows = [4, 8]\ngemm = ["8x64x8"]\nout = "o"\n'
                 '[[extra]]\na_format = "mxfp8_e4m3"\nw_format = "mxfp4_e2m1"\nrows = 4\n')
    configs, settings, opt = prepare(["--sweep", str(f), "--cols", "4"])
    assert len(configs) == 2 * 2 * 2 + 2
    assert all(c.cols == 4 for c in configs)
    mixed = [c for c in configs if c.a_format != c.w_format]
    assert {(c.a_format, c.w_format, c.rows) for c in mixed} == {
        ("mxfp8_e4m3", "mxfp4_e2m1", 4)}
    assert settings.gemms == ((8, 64, 8),) and opt["out"] == Path("o")
    top, extras = read_sweep_file(f)
    assert top["rows"] == "4,8" and extras == [{"a_format": "mxfp8_e4m3",
                                                "w_format": "mxfp4_e2m1", "rows": "4"}]


# -- sweep machinery -----------------------------------------------------------------------

def _configs():
    return [Config(rows=r, cols=r, a_format=f, w_format=f, sparsity=sp)
            for r in (2, 4) for f in ("mxfp8_e4m3", "mxfp4_e2m1") for sp in ((4, 4), (2, 4))]


def test_resume_skips_finished_points(tmp_path):
    s = Settings(gemms=((8, 64, 8),), eval_shape=(8, 64, 8))
    configs = _configs()
    area = CountingArea()
    first = run_sweep(configs, s, tmp_path, area_fn=area, progress=False)
    assert (first.evaluated, first.cached, first.failures) == (len(configs), 0, [])
    assert len(list((tmp_path / "points").glob("*.json"))) == len(configs)
    area.calls.clear()
    second = run_sweep(configs, s, tmp_path, area_fn=area, progress=False)
    assert (second.evaluated, second.cached) == (0, len(configs)) and area.calls == []
    assert second.rows == json.loads(json.dumps(first.rows))
    # A torn point file is evaluated again; nothing else is.
    (tmp_path / "points" / f"{point_key(configs[3], s)}.json").write_text('{"key": ')
    third = run_sweep(configs, s, tmp_path, area_fn=area, progress=False)
    assert (third.evaluated, area.calls) == (1, [configs[3].name])
    # Different settings are different points.
    assert point_key(configs[0], s) != point_key(configs[0], Settings(gemms=((8, 32, 8),)))


def test_interrupted_sweep_resumes(tmp_path):
    s = Settings(gemms=((8, 64, 8),), eval_shape=(8, 64, 8))
    configs = _configs()
    calls = []

    def interrupted(config, top="engine"):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(config.name)
        return fake_area(config, top)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, s, tmp_path, area_fn=interrupted, progress=False)
    assert len(list((tmp_path / "points").glob("*.json"))) == 3
    area = CountingArea()
    res = run_sweep(configs, s, tmp_path, area_fn=area, progress=False)
    assert (res.evaluated, res.cached) == (len(configs) - 3, 3)
    assert area.calls == [c.name for c in configs[3:]]


def test_cli_end_to_end_and_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--format", "mxfp8_e4m3,mxfp4_e2m1", "--sparsity", "4:4,2:4", "--rows", "2,4",
            "-o", str(out)] + FAST
    code, err = _run(argv, capsys, area_fn=fake_area)
    assert code == 0, err
    assert "8 evaluated, 0 from cache" in err
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    cfg = Config(rows=2, cols=8, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                 sparsity=(2, 4))
    row = next(r for r in rows if r["name"] == cfg.name)
    assert int(row["cycles@16x128x16"]) == cfg.schedule.cycles(16, 128, 16)
    assert float(row["macs_per_cycle"]) == pytest.approx(
        (8 * 64 * 8 + 16 * 128 * 16) / (cfg.schedule.cycles(8, 64, 8) + cfg.schedule.cycles(16, 128, 16)))
    assert float(row["tpa_total"]) == pytest.approx(
        float(row["macs_per_cycle"]) / (fake_area(cfg)["total_ge"] / 1000))
    assert any(r["pareto"] == "True" for r in rows)
    report = (out / "report.md").read_text()
    assert "## Pareto front" in report and "## Prune/quantize order" in report
    for png in ("pareto.png", "area_breakdown.png", "utilization.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    code, err = _run(argv, capsys, area_fn=fake_area)
    assert code == 0 and "0 evaluated, 8 from cache" in err


def test_rtl_model_mismatch_fails_loudly(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--format", "mxfp8_e4m3", "--sparsity", "4:4,1:4", "--rows", "2",
            "--simulate", "--sim-gemm", "4x64x4", "-o", str(out), "--no-plots"] + FAST
    code, err = _run(argv, capsys, area_fn=fake_area, simulate_fn=disagreeing_simulate)
    bad = Config(rows=2, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(1, 4))
    model = bad.schedule.cycles(4, 64, 4)
    assert code == 1
    assert (f"error: point {bad.name} (GEMM 4x64x4): RTL took {model + 1} cycles but the "
            f"model says {model}") in err
    assert not (out / "results.csv").exists() and not (out / "report.md").exists()
    # The agreeing point is cached, the failing one is not and runs again.
    assert len(list((out / "points").glob("*.json"))) == 1
    code, err = _run(argv, capsys, area_fn=fake_area, simulate_fn=agreeing_simulate)
    assert code == 0 and "1 evaluated, 1 from cache" in err
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["sim_cycles"]) == int(r["sim_model_cycles"]) for r in rows] == [True, True]


def test_failed_rtl_output_fails(tmp_path):
    def wrong_output(config, m, k, n, *, seed):
        return {**agreeing_simulate(config, m, k, n, seed=seed), "passed": False,
                "mismatches": 3}
    s = Settings(gemms=((8, 64, 8),), eval_shape=(8, 64, 8), simulate=True,
                 sim_gemm=(4, 32, 4), sim_filter="*_2x2_*")
    cfgs = [Config(rows=2, cols=2), Config(rows=4, cols=4)]
    res = run_sweep(cfgs, s, tmp_path, area_fn=fake_area, simulate_fn=wrong_output,
                    progress=False)
    assert res.failures == [f"point {cfgs[0].name} (GEMM 4x32x4): RTL output differs from "
                            f"golden in 3 values"]
    assert "sim_cycles" not in res.rows[1]


def test_process_pool_matches_inline(tmp_path):
    s = Settings(gemms=((8, 64, 8),), eval_shape=(8, 64, 8))
    cfgs = _configs()[:3]
    inline = run_sweep(cfgs, s, tmp_path / "a", area_fn=fake_area, progress=False)
    pool = run_sweep(cfgs, s, tmp_path / "b", jobs=2, area_fn=fake_area, progress=False)
    # JSON text compares NaN (no order study on dense points) equal to itself.
    drop = lambda r: json.dumps({k: v for k, v in r.items() if not k.endswith("_seconds")},
                                sort_keys=True)
    assert [drop(r) for r in pool.rows] == [drop(r) for r in inline.rows]


_DASK_WORKERS = []


def area_on_worker(config, top="engine"):
    """fake_area that records the Dask worker it runs on (module level, so that the
    in-process worker unpickles it by reference and appends to this module's list)."""
    import distributed
    _DASK_WORKERS.append(distributed.get_worker().address)  # raises outside a worker
    return fake_area(config, top)


def test_dask_local_cluster(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    workers = _DASK_WORKERS
    workers.clear()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  host="127.0.0.1", protocol="tcp://",
                                  dashboard_address=None) as cluster:
        out = tmp_path / "out"
        argv = ["--format", "mxfp8_e4m3", "--sparsity", "4:4,2:4", "--rows", "2",
                "--dask", cluster.scheduler_address, "-o", str(out), "--no-plots"] + FAST
        code, err = _run(argv, capsys, area_fn=area_on_worker)
        worker_addresses = list(cluster.scheduler_info["workers"])
    assert code == 0, err
    assert "2 evaluated, 0 from cache" in err
    assert len(workers) == 2 and set(workers) <= set(worker_addresses)
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


# -- real synthesis on the smallest config --------------------------------------------------

def test_real_synth_smallest_point(tmp_path):
    estimate = pytest.importorskip("synth.estimate")
    pytest.importorskip("hw.engine")
    cfg = Config(rows=1, cols=1, a_format="mxint2", w_format="mxint2", sparsity=(1, 1),
                 block_size=32, m_max=1, k_max=32, n_max=1)
    s = Settings(gemms=((1, 32, 1),), eval_shape=(4, 32, 4))
    res = run_sweep([cfg], s, tmp_path, progress=False)
    assert res.failures == []
    row = res.rows[0]
    area = estimate.estimate_area(cfg, top="engine")
    assert row["total_ge"] == area["total_ge"] > row["logic_ge"] > 0
    assert row["tpa_total"] == pytest.approx(32 / cfg.schedule.cycles(1, 32, 1) / (area["total_ge"] / 1000))


@pytest.mark.slow
def test_real_rtl_matches_model(tmp_path, capsys):
    pytest.importorskip("sim.run")
    out = tmp_path / "out"
    code, err = _run(["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--rows", "2",
                      "--cols", "2", "--m-max", "8", "--k-max", "64", "--n-max", "8",
                      "--gemm", "8x64x8", "--eval-shape", "8x64x8", "--simulate",
                      "--sim-gemm", "4x64x4", "-o", str(out), "--no-plots",
                      "--no-progress"], capsys, area_fn=fake_area)
    assert code == 0, err
    with open(out / "results.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["sim_passed"] == "True"
    assert int(row["sim_cycles"]) == int(row["sim_model_cycles"]) == Config(
        rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4),
        m_max=8, k_max=64, n_max=8).schedule.cycles(4, 64, 4)


# -- --liberty: throughput at Fmax in a real library (issue #13) -------------------------

class FakeTiming:
    """A ``synth.timing.pe_timing`` stand-in: the figures depend on the PE only (format,
    sparsity, dataflow), as the real one's do; it records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, liberty, clock_ps):
        self.calls.append((config.name, liberty, clock_ps))
        path = {"mxfp8_e4m3": 4000.0, "mxfp4_e2m1": 2500.0, "int8": 1000.0}[config.a_format]
        path *= 1.0 + 0.1 * config.n_keep
        return {"library": "fake_lib", "clock_ps": clock_ps or 3968.0,
                "ge_unit_cell": "NAND2X1", "ge_unit_um2": 16.0, "fo4_ps": 100.0,
                "pe_area_um2": 20000.0 * config.n_keep, "critical_path_ps": path,
                "critical_path_fo4": path / 100.0, "fmax_mhz": 1e6 / path,
                "worst_module": "PE", "start_point": "a_0", "end_point": "acc_1"}


def test_point_keys_without_liberty_are_those_of_before():
    """Without --liberty the cache keys are unchanged (pinned from main fb91399), so the
    committed docs/dse sweeps stay cached and reproducible."""
    cfg = Config(rows=2, cols=4, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1")
    assert point_key(cfg, Settings()) == "e67d988b02b7e79319bda02f"
    assert point_key(Config(), Settings(gemms=((8, 64, 8),), seed=3)) == "f3f62c865f29d9bbbecefd15"
    timed = Settings(liberty="osu018", liberty_digest="ab" * 32)
    assert point_key(cfg, timed) != point_key(cfg, Settings())
    assert point_key(cfg, timed) != point_key(cfg, Settings(liberty="osu018",
                                                            liberty_digest="cd" * 32))
    assert point_key(cfg, timed) != point_key(cfg, Settings(liberty="osu018",
                                                            liberty_digest="ab" * 32,
                                                            clock_ps=2000.0))


def test_liberty_columns_front_and_plot(tmp_path, capsys, monkeypatch):
    from synth import nldm
    lib = pytest.importorskip("synth.sta")
    try:
        nldm.find_library("osu018")
        lib.sta_executable()
    except (nldm.LibraryError, lib.StaError) as e:
        pytest.skip(str(e))
    out = tmp_path / "out"
    timing = FakeTiming()
    argv = ["--format", "int8,mxfp4_e2m1", "--sparsity", "4:4,2:4", "--rows", "2,4",
            "--liberty", "osu018", "--clock-ps", "3000", "-o", str(out)] + FAST
    code, err = _run(argv, capsys, area_fn=fake_area, timing_fn=timing)
    assert code == 0, err
    assert len(timing.calls) == 8 and {c[1:] for c in timing.calls} == {("osu018", 3000.0)}
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    cfg = Config(rows=4, cols=8, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(2, 4))
    row = next(r for r in rows if r["name"] == cfg.name)
    area, t = fake_area(cfg), timing(cfg, "osu018", 3000.0)
    # Engine area: PEs x the mapped PE, the rest of the logic and the buffers at the
    # NAND2's um2 per GE.
    rest = area["logic_ge"] - 32 * sum(area["pe_breakdown"].values())
    mm2 = (32 * t["pe_area_um2"] + (rest + area["buffer_ge"]) * 16.0) * 1e-6
    assert float(row["area_mm2"]) == pytest.approx(mm2)
    assert float(row["fmax_mhz"]) == pytest.approx(1e6 / 3000.0)
    assert float(row["macs_per_s"]) == pytest.approx(float(row["macs_per_cycle"]) * 1e6 / 3e3 * 1e6)
    assert float(row["macs_per_s_per_mm2"]) == pytest.approx(float(row["macs_per_s"]) / mm2)
    front = [r for r in rows if r["pareto_fmax"] == "True"]
    best = max(rows, key=lambda r: float(r["macs_per_s_per_mm2"]))
    assert best in front
    report = (out / "report.md").read_text()
    assert "## At Fmax in fake_lib (pre-layout, no wire load)" in report
    assert "### Pareto front (MAC/s/mm2 at Fmax vs relative error)" in report
    assert (out / "pareto_fmax.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun is served from the point cache; without --liberty the columns are absent.
    code, err = _run(argv, capsys, area_fn=fake_area, timing_fn=timing)
    assert code == 0 and "0 evaluated, 8 from cache" in err and len(timing.calls) == 9
    plain = tmp_path / "plain"
    code, err = _run([a.replace(str(out), str(plain)) for a in argv[:6]] + ["-o", str(plain)]
                     + FAST, capsys, area_fn=fake_area, timing_fn=timing)
    assert code == 0, err
    with open(plain / "results.csv") as f:
        assert "macs_per_s_per_mm2" not in next(csv.reader(f))
    assert "At Fmax" not in (plain / "report.md").read_text()
    assert not (plain / "pareto_fmax.png").exists() and len(timing.calls) == 9
