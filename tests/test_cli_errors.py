"""Bad invocations of the four commands (``python -m gen/sim/synth/dse``).

Every row must end with exit code 2 and exactly one line on stderr (the pinned sentence),
with no traceback, before any work starts, and without a new file anywhere: the rows run
in an empty temporary working directory, which also holds every output location they
name, and the fixture files they read are checked unchanged as well.

The rows run in-process (``run_cli(main, argv)`` with captured streams) with each
command's work entry point replaced by a function that raises: a check that comes after
the work has started fails its row even if it then prints the right sentence.  A few
rows also run as real subprocesses to show that the in-process harness is faithful.
"""

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dse.__main__ as dse_cli
import gen.__main__ as gen_cli
import gen.generate
import sim.__main__ as sim_cli
import sim.run
import synth.__main__ as synth_cli
import synth.table as table_cli
from nmmx.flags import run_cli
from golden.config import MAX_BUFFER_BITS, Config
from sim.stimulus import make_operands

ROOT = Path(__file__).resolve().parent.parent
MAINS = {"gen": gen_cli.main, "sim": sim_cli.main, "synth": synth_cli.main,
         "dse": dse_cli.main, "synth.table": table_cli.main}
#: The function of each command that starts the real work (elaboration, simulation,
#: synthesis, the sweep); the harness makes each of them raise :class:`WorkStarted`.
WORK = {"gen": (gen.generate, "build_verilog"), "sim": (sim.run, "simulate_cases"),
        "synth": (synth_cli, "estimate_area", "timing_report", "energy_report"),
        "dse": (dse_cli, "run_sweep"),
        "synth.table": (table_cli, "table_rows", "energy_rows")}
#: The commands that take the config flags (``python -m synth.table`` has fixed configs).
CONFIG_CLIS = ("gen", "sim", "synth", "dse")

#: The small engine of the replay fixtures.
REPLAY_CONFIG = Config(rows=2, cols=2, m_max=4, k_max=64, n_max=4)
#: A TCP port on this machine where nothing listens (bound, never listened on).
_closed_port_socket = socket.socket()
_closed_port_socket.bind(("127.0.0.1", 0))
CLOSED_PORT = _closed_port_socket.getsockname()[1]

AS_ROOT = os.geteuid() == 0
NOT_ROOT = pytest.mark.skipif(AS_ROOT, reason="root writes into read-only directories")


class WorkStarted(Exception):
    """Raised by a command's work entry point: its checks came too late."""


def _refuse(*args, **kwargs):
    raise WorkStarted("the command started its work before rejecting the input")


# -- fixture files ---------------------------------------------------------------------------

def _replay_arrays():
    c = REPLAY_CONFIG
    enc = make_operands(c, 3, 40, 3, data="gaussian", seed=1)
    return {"config": json.dumps(c.to_dict()), "data": "gaussian", "seed": 1,
            "shape": np.array([enc.m, enc.k, enc.n], np.int64), "a_codes": enc.a_codes,
            "a_scales": enc.a_scales, "w_values": enc.w_values, "w_indices": enc.w_indices,
            "w_scales": enc.w_scales}


def _make_fixtures(fx):
    fx.mkdir()
    good = _replay_arrays()
    np.savez(fx / "good.npz", **good)
    variants = {
        "bad_json": {"config": "{rows: 2"},
        "list_config": {"config": "[2, 2]"},
        "bad_config": {"config": json.dumps({**REPLAY_CONFIG.to_dict(), "sparsity": "5:4"})},
        "num_config": {"config": np.arange(3)},
        "big_k": {"shape": np.array([3, 65, 3], np.int64)},
        "two_dims": {"shape": np.array([3, 40], np.int64)},
        "wrong_shape": {"a_codes": good["a_codes"][:, :32]},
        "wrong_dtype": {"w_scales": good["w_scales"].astype(np.int32)},
        "bad_data": {"data": "noise"},
        "neg_seed": {"seed": -3},
    }
    for name, change in variants.items():
        np.savez(fx / f"{name}.npz", **{**good, **change})
    np.savez(fx / "no_config.npz", **{k: v for k, v in good.items() if k != "config"})
    np.savez(fx / "pickled.npz", **{**good, "a_codes": np.array([{"x": 1}], dtype=object)})
    blob = (fx / "good.npz").read_bytes()
    (fx / "truncated.npz").write_bytes(blob[:len(blob) // 2])
    (fx / "empty.npz").write_bytes(b"")
    np.save(fx / "array.npy", good["a_codes"])
    (fx / "text.npz").write_text("not an archive\n")
    # weights
    w = np.ones((4, 64), np.float32)
    np.save(fx / "w_object.npy", np.array([{"x": 1}], dtype=object))
    np.save(fx / "w_zero.npy", np.zeros((0, 64), np.float32))
    np.save(fx / "w_nan.npy", np.full((4, 64), np.nan, np.float32))
    np.savez(fx / "w.npz", q_proj=w)
    wblob = (fx / "w.npz").read_bytes()
    (fx / "w_trunc.npz").write_bytes(wblob[:len(wblob) // 2])
    (fx / "w_empty.npy").write_bytes(b"")
    (fx / "w.txt").write_text("1 2 3\n")
    (fx / "w_dir.npy").mkdir()
    (fx / "w_garbage.safetensors").write_bytes(b"\xff" * 64)
    # sweep files
    (fx / "latin1.toml").write_bytes("format = 'mxfp8_e4m3'  # d\xe9j\xe0\n".encode("latin-1"))
    (fx / "broken.toml").write_text("rows = [4, 8\n")
    (fx / "unknown.toml").write_text("colour = 3\n")
    (fx / "typed.toml").write_text("rows = 'four'\n")
    (fx / "bad_rows.toml").write_text("rows = [4, 0]\n")
    # other inputs
    (fx / "not_exec").write_text("#!/bin/sh\n")
    (fx / "not_exec").chmod(0o644)
    (fx / "a_file").write_text("x\n")
    (fx / "other.json").write_text('{"rows": 3}\n')
    (fx / "read_only").mkdir()
    (fx / "read_only").chmod(0o555)
    # model-study checkpoints and texts
    from model_fixtures import make_tiny_bert
    make_tiny_bert(fx / "bert")
    make_tiny_bert(fx / "bert_partial", drop=("encoder.layer.1.output.dense.weight",))
    make_tiny_bert(fx / "roberta", config={"model_type": "roberta",
                                           "architectures": ["RobertaModel"]})
    make_tiny_bert(fx / "bert_no_tok")
    (fx / "bert_no_tok" / "tokenizer.json").unlink()
    make_tiny_bert(fx / "bert_no_weights")
    (fx / "bert_no_weights" / "model.safetensors").unlink()
    (fx / "empty.txt").write_text("\n  \n")
    # model-study keys in sweep files
    (fx / "m_prune.toml").write_text('model = "bert"\nprune = ["wanda", "random"]\n')
    (fx / "m_type.toml").write_text('model = "bert"\nrank = "half"\n')
    (fx / "m_extra.toml").write_text('model = "bert"\n[[extra]]\nsmooth = "smoothquant:7"\n')
    (fx / "m_extra_text.toml").write_text('model = "bert"\n[[extra]]\ntext = "e.txt"\n')
    (fx / "m_rank.toml").write_text('model = "bert"\n[[extra]]\nrank = [0, 65]\n')
    (fx / "m_neg.toml").write_text('model = "bert"\nrank = -2\n')
    (fx / "m_nomodel.toml").write_text('format = "mxfp8_e4m3"\n[[extra]]\norder = "qp"\n')
    (fx / "m_missing.toml").write_text('model = "none"\n')
    (fx / "m_text.toml").write_text('model = "bert"\ntext = "empty.txt"\n')
    (fx / "m_gptq.toml").write_text('model = "bert"\n[[extra]]\nformat = "int8"\n'
                                    'quant = "gptq"\n')


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    fx = tmp_path_factory.mktemp("cli_errors") / "fx"
    _make_fixtures(fx)
    return fx


def _tree(root):
    """Every path under ``root`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _expand(argv, fx, tmp):
    return [a.format(fx=fx, tmp=tmp, port=CLOSED_PORT) for a in argv]


def run_in_process(cli, argv, monkeypatch, cwd):
    """``python -m <cli> argv`` in this process: ``(exit code, stdout, stderr)``."""
    mod, *names = WORK[cli]
    for name in names:
        monkeypatch.setattr(mod, name, _refuse)
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(MAINS[cli], argv)
    return code, out.getvalue(), err.getvalue()


def run_subprocess(cli, argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", cli, *argv], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout, res.stderr


# -- the table -------------------------------------------------------------------------------

_GEMM = r"A GEMM shape must be written MxKxN with positive whole numbers"


def _config_rows(cli):
    """Config-flag errors: the same sentence from every command."""
    return [
        (["--rows", "0"], r"rows must be between 1 and 64, not 0"),
        (["--rows", "65"], r"rows must be between 1 and 64, not 65"),
        (["--cols", "x"], r"--cols must be a whole number, not 'x'"),
        (["--rows", ""], r"--rows has an empty item in ''"),
        (["--sparsity", "5:4"], r"N:M sparsity needs 0 < N <= M, not 5:4"),
        (["--sparsity", "2:3"], r"N:M sparsity needs M in \{1, 2, 4, 8, 16\}, not 2:3"),
        (["--sparsity", "2-4"], r"Sparsity must be written N:M with whole numbers, not '2-4'"),
        (["--format", "fp7"], r"Unknown element format 'fp7'.*"),
        (["--a-format", "int8", "--w-format", "mxfp4_e2m1"],
         r"int8 only pairs with int8, not a_format=int8 with w_format=mxfp4_e2m1"),
        (["--block-size", "30"], r"block_size must be a multiple of the sparsity group M=4, "
                                 r"not 30"),
        (["--block-size", "0"], r"block_size must be at least 1, not 0"),
        (["--dataflow", "xs"], r"dataflow must be one of os, ws, not 'xs'"),
        (["--m-max", "0"], r"m_max must be at least 1, not 0"),
        (["--n-max", "-1"], r"n_max must be at least 1, not -1"),
        (["--k-max", "100000000"],
         rf"m_max=64, k_max=100000000 and n_max=64 need 86400131072 buffer bits, more than "
         rf"the limit of {MAX_BUFFER_BITS} \(2\*\*31\)"),
        (["--m-max", "1000000", "--n-max", "1000000"],
         r"m_max=1000000, k_max=1024 and n_max=1000000 need \d+ buffer bits, more than "
         r"the limit of 2147483648 \(2\*\*31\)"),
        (["--bogus"], r"unrecognized arguments: --bogus"),
        (["--rows"], r"argument --rows: expected one argument"),
    ]


_THREE = "mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p"


def _modes_rows():
    """``--modes`` errors (gen, sim, synth; dse sweeps take no mode lists yet)."""
    return [
        (["--modes", "mxfp9@2:4,mxfp4_e2m1@4:4"],
         r"Mode 'mxfp9@2:4': Unknown element format 'mxfp9'; choose one of .*"),
        (["--modes", "mxfp8_e4m3@5:4,mxfp4_e2m1@4:4"],
         r"Mode 'mxfp8_e4m3@5:4': N:M sparsity needs 0 < N <= M, not 5:4"),
        (["--modes", "mxfp8_e4m3"],
         r"A mode must be written FORMAT@N:M or A_FORMAT/W_FORMAT@N:M \(p after M for pair "
         r"sparsity\), not 'mxfp8_e4m3'"),
        (["--modes", "mxfp8_e4m3@2:4p,mxfp4_e2m1@4:4"],
         r"Mode 'mxfp8_e4m3@2:4p': pair sparsity \(p\) needs 4-bit formats, not mxfp8_e4m3"),
        (["--modes", "mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp8_e4m3@2:4"],
         r"Mode 'mxfp8_e4m3@2:4' is listed twice"),
        (["--modes", "int8@2:4,mxfp8_e4m3@2:4"],
         r"Mode 'int8@2:4': modes are MX formats only, so int8 cannot be one"),
        (["--modes", _THREE, "--block-size", "4"],
         r"Mode 'mxfp4_e2m1@4:8p': block_size must be a multiple of the sparsity group M=8, "
         r"not 4"),
        (["--modes", "mxfp8_e4m3@2:4,mxfp4_e2m1@8:8"],
         r"Mode 'mxfp4_e2m1@8:8' fills 4 multiplier slots but mode 'mxfp8_e4m3@2:4' fills 2; "
         r"every mode must fill the same slots"),
        (["--modes", "mxfp8_e4m3@2:4,mxfp4_e2m1@2:4"],
         r"Mode 'mxfp4_e2m1@2:4': sparse 4-bit modes select whole bytes, so they need pairs "
         r"\(2:4p\), not 2:4"),
        (["--modes", _THREE, "--dataflow", "ws"],
         r"An engine with several modes is output stationary in this release, not "
         r"dataflow=ws"),
        (["--modes", ""], r"--modes has an empty item in ''"),
    ]


_MODES_ONLY = [
    ("sim", ["--modes", _THREE, "--mode", "mxfp4_e2m1@4:8"],
     r"--mode: Mode 'mxfp4_e2m1@4:8' is not one of this engine's modes \(mxfp8_e4m3@2:4, "
     r"mxfp4_e2m1@4:4, mxfp4_e2m1@4:8p\)"),
    ("sim", ["--mode", "mxfp4_e2m1@4:4"],
     r"--mode: Mode 'mxfp4_e2m1@4:4' is not one of this engine's modes \(mxfp8_e4m3@2:4\)"),
    ("sim", ["--modes", _THREE, "--mode", "fp4"],
     r"--mode: A mode must be written FORMAT@N:M or A_FORMAT/W_FORMAT@N:M \(p after M for "
     r"pair sparsity\), not 'fp4'"),
    ("gen", ["--modes", _THREE, "--bus", "axi"],
     r"The AXI wrapper does not take a mode yet, so --bus axi needs a fixed engine, not one "
     r"with 3 modes"),
    ("synth", ["--modes", _THREE, "--top", "soc"],
     r"--top soc does not take an engine with several modes yet"),
    ("synth", ["--modes", _THREE, "--compare-dataflows"],
     r"--compare-dataflows does not take an engine with several modes yet"),
]


_SIM = [
    (["--seed", "-5"], r"--seed must be at least 0, not -5"),
    (["--seed", "x"], r"--seed must be a whole number, not 'x'"),
    (["--seed", "1.5"], r"--seed must be a whole number, not '1\.5'"),
    (["--gemm", ""], rf"--gemm: {_GEMM}, not ''"),
    (["--gemm", "4x4"], rf"--gemm: {_GEMM}, not '4x4'"),
    (["--gemm", "4x0x4"], rf"--gemm: {_GEMM}, not '4x0x4'"),
    (["--gemm", "4x2000x4"], r"GEMM K=2000 does not fit this engine \(k_max=1024\); K is "
                             r"never split across runs"),
    (["--data", "noise"], r"argument --data: invalid choice: 'noise' \(choose from .*\)"),
    (["--replay", "{fx}/none.npz"], r"Replay file '.*/none\.npz' does not exist"),
    (["--replay", "{fx}/empty.npz"], r"Replay file '.*/empty\.npz' is empty"),
    (["--replay", "{fx}"], r"Replay file '.*/fx' is not a regular file"),
    (["--replay", "{fx}/array.npy"], r"Replay file '.*/array\.npy' is not an \.npz archive "
                                     r"written by python -m sim"),
    (["--replay", "{fx}/text.npz"], r"Replay file '.*/text\.npz' is not an \.npz archive "
                                    r"written by python -m sim"),
    (["--replay", "{fx}/truncated.npz"], r"Replay file '.*/truncated\.npz' is damaged "
                                         r"\(truncated, or an array in it cannot be read\)"),
    (["--replay", "{fx}/pickled.npz"], r"Replay file '.*/pickled\.npz' is damaged "
                                       r"\(truncated, or an array in it cannot be read\)"),
    (["--replay", "{fx}/no_config.npz"], r"Replay file '.*/no_config\.npz' has no 'config' "
                                         r"entry, so it was not written by python -m sim"),
    (["--replay", "{fx}/bad_json.npz"], r"Replay file '.*/bad_json\.npz' has a config that "
                                        r"is not valid JSON"),
    (["--replay", "{fx}/list_config.npz"], r"Replay file '.*/list_config\.npz' has a config "
                                           r"that is a JSON list, not an object"),
    (["--replay", "{fx}/num_config.npz"], r"Replay file '.*/num_config\.npz' stores its "
                                          r"config as int64 \(3,\), not as JSON text"),
    (["--replay", "{fx}/bad_config.npz"], r"Replay file '.*/bad_config\.npz' has a bad config "
                                          r"\(N:M sparsity needs 0 < N <= M, not 5:4\)"),
    (["--replay", "{fx}/big_k.npz"], r"Replay file '.*/big_k\.npz' holds a GEMM with K=65, "
                                     r"more than its config's k_max=64"),
    (["--replay", "{fx}/two_dims.npz"], r"Replay file '.*/two_dims\.npz' must store the GEMM "
                                        r"shape as three positive whole numbers, not \[3, 40\]"),
    (["--replay", "{fx}/wrong_shape.npz"],
     r"Replay file '.*/wrong_shape\.npz' holds operands that do not fit its config "
     r"\(EncodedOperands\.a_codes must have shape \(3, 64\) for a 3 x 40 x 3 GEMM with this "
     r"config, not \(3, 32\)\)"),
    (["--replay", "{fx}/wrong_dtype.npz"],
     r"Replay file '.*/wrong_dtype\.npz' holds operands that do not fit its config "
     r"\(EncodedOperands\.w_scales must be a uint8 array, not int32\)"),
    (["--replay", "{fx}/bad_data.npz"], r"Replay file '.*/bad_data\.npz' names the stimulus "
                                        r"class 'noise', not one of .*"),
    (["--replay", "{fx}/neg_seed.npz"], r"Replay file '.*/neg_seed\.npz' must store the seed "
                                        r"as a whole number at least 0, not -3"),
    (["--replay", "{fx}/good.npz", "--seed", "-1"], r"--seed must be at least 0, not -1"),
    (["--verbose", "extra"], r"unrecognized arguments: extra"),
]

_SIM_OUTPUT = [
    pytest.param("sim", ["--json", "{fx}/a_file/r.json"], r"The .*a_file.*",
                 id="sim-json-under-file"),
]

_GEN = [
    (["--name", "1top"], r"Top-level name must be a Verilog identifier .*, not '1top'"),
    (["--name", "a-b"], r"Top-level name must be a Verilog identifier .*, not 'a-b'"),
    (["-o", "{fx}/a_file"], r"The output directory '.*/a_file' exists and is not a "
                            r"directory"),
    (["--quiet", "yes"], r"unrecognized arguments: yes"),
]

_GEN_OUTPUT = [
    pytest.param("gen", ["-o", "{fx}/a_file/sub"], r"The output directory .*a_file.*",
                 id="gen-out-under-file"),
    pytest.param("gen", ["-o", "/proc/nmmx"], r"The output directory '/proc/nmmx' is under "
                                              r"/proc, which holds no regular files",
                 id="gen-out-proc"),
    pytest.param("gen", ["-o", "/sys/nmmx"], r"The output directory '/sys/nmmx' is under "
                                             r"/sys, which holds no regular files",
                 id="gen-out-sys"),
    pytest.param("gen", ["-o", ""], r"The output directory must not be empty",
                 id="gen-out-empty"),
    pytest.param("gen", ["-o", "{tmp}/" + "d" * 300], r"The output directory has a name of "
                                                      r"300 bytes.*",
                 id="gen-out-long-name"),
    pytest.param("gen", ["-o", "{fx}/read_only/sub"], r"The output directory .* is not "
                                                      r"writable.*",
                 marks=NOT_ROOT, id="gen-out-read-only"),
]

_SYNTH = [
    (["--top", "core"], r"argument --top: invalid choice: 'core' \(choose from 'pe', "
                        r"'array', 'engine', 'soc'\)"),
    (["--yosys", "/no/such/yosys"], r"Yosys executable '/no/such/yosys' does not exist"),
    (["--yosys", "no-such-yosys-here"], r"Yosys executable 'no-such-yosys-here' does not "
                                        r"exist"),
    (["--yosys", "{fx}/not_exec"], r"Yosys executable '.*/not_exec' is not an executable "
                                   r"file"),
    (["--yosys", "{fx}"], r"Yosys executable '.*/fx' is not an executable file"),
    (["--json", "{tmp}"], r"The --json file '.*' is a directory"),
    (["--json", "{fx}/a_file/a.json"], r"The --json file '.*/a_file/a\.json' cannot be "
                                       r"created: '.*/a_file' is a file, not a directory"),
    (["--liberty", "{fx}/none.lib"], r"The liberty file '.*/none\.lib' does not exist"),
    (["--liberty", ","], r"The liberty list ',' names no file"),
    (["--liberty", "osu018", "--clock-ps", "0"], r"--clock-ps must be a positive number of "
                                                 r"ps, not '0'"),
    (["--liberty", "osu018", "--clock-ps", "fast"], r"--clock-ps must be a positive number "
                                                    r"of ps, not 'fast'"),
    (["--liberty", "osu018", "--clock-ps", "inf"], r"--clock-ps must be a positive number "
                                                   r"of ps, not 'inf'"),
    (["--clock-ps", "4000"], r"--clock-ps 4000 needs --liberty \(the generic cells\.lib has "
                             r"no timing\)"),
    (["--liberty", "osu018", "--compare-dataflows"], r"--liberty times one dataflow; drop "
                                                     r"--compare-dataflows or run once per "
                                                     r"--dataflow"),
    (["--liberty", "{fx}/w.txt"], r"The liberty file '.*/w\.txt' has a syntax error near "
                                       r"token 0 \('1 2 3'\)"),
    # --energy (issue #14)
    (["--energy"], r"--energy needs --liberty \(the generic cells\.lib has no power data\)"),
    (["--data", "heavy"], r"--data heavy needs --energy"),
    (["--gemm", "4x4x4"], r"--gemm 4x4x4 needs --energy"),
    (["--liberty", "osu018", "--energy", "--data", "uniform"],
     r"--data must be one of gaussian, .*, halfzero, zerotiles25, .*, not 'uniform'"),
    (["--liberty", "osu018", "--energy", "--gemm", "4x4"],
     r"A GEMM shape must be written MxKxN with positive whole numbers, not '4x4'"),
    (["--liberty", "osu018", "--energy", "--gemm", "4x2000x4"],
     r"GEMM K=2000 does not fit this engine \(k_max=1024\)"),
]

_SYNTH_OUTPUT = [
    pytest.param("synth", ["--top", "pe", "--json", "{fx}/read_only/a.json"],
                 r"The .* is not writable.*", marks=NOT_ROOT,
                 id="synth-json-read-only"),
]

_O = ["-o", "{tmp}/out"]
_DSE = [
    ([], r"An output directory is required \(-o DIR or 'out' in the sweep file\)"),
    ([*_O, "--gemm", ""], rf"--gemm: {_GEMM}, not ''"),
    ([*_O, "--gemm", "64x512x64,4x4"], rf"--gemm: {_GEMM}, not '4x4'"),
    ([*_O, "--eval-shape", "1x2"], rf"--eval-shape: {_GEMM}, not '1x2'"),
    ([*_O, "--sim-gemm", "axbxc"], rf"--sim-gemm: {_GEMM}, not 'axbxc'"),
    ([*_O, "--seed", "-5"], r"--seed must be at least 0, not -5"),
    ([*_O, "--seed", "x"], r"--seed must be a whole number, not 'x'"),
    ([*_O, "--jobs", "0"], r"--jobs must be at least 1, not 0"),
    ([*_O, "--jobs", "two"], r"--jobs must be a whole number, not 'two'"),
    ([*_O, "--rows", "4,0"], r"rows must be between 1 and 64, not 0"),
    ([*_O, "--sparsity", "2:4,,1:4"], r"--sparsity has an empty item in '2:4,,1:4'"),
    ([*_O, "--simulate", "--sim-filter", "nothing*"],
     r"--sim-filter 'nothing\*' matches no point of the sweep"),
    ([*_O, "--weights", "{fx}/none.npz"], r"Weights file '.*/none\.npz' does not exist"),
    ([*_O, "--weights", "{fx}/w_dir.npy"], r"Weights file '.*/w_dir\.npy' is not a regular "
                                           r"file"),
    ([*_O, "--weights", "{fx}/w.txt"], r"Weights file '.*/w\.txt' must end in \.npy, \.npz, "
                                       r"\.safetensors, not '\.txt'"),
    ([*_O, "--weights", "{fx}/w_empty.npy"], r"Weights file '.*/w_empty\.npy' is empty"),
    ([*_O, "--weights", "{fx}/w_object.npy"],
     r"Weights file '.*/w_object\.npy' is not a \.npy array of numbers \(damaged, truncated "
     r"or holding Python objects\)"),
    ([*_O, "--weights", "{fx}/w_trunc.npz"],
     r"Weights file '.*/w_trunc\.npz' is not a \.npz archive of arrays of numbers \(damaged, "
     r"truncated or holding Python objects\)"),
    ([*_O, "--weights", "{fx}/w_garbage.safetensors"],
     r"Weights file '.*/w_garbage\.safetensors' is not a safetensors file of numbers "
     r"\(damaged, truncated or holding Python objects\)"),
    ([*_O, "--weights", "{fx}/w_zero.npy"], r"Weight tensor 'w_zero' in '.*/w_zero\.npy' is "
                                            r"empty \(shape 0 x 64\)"),
    ([*_O, "--weights", "{fx}/w_nan.npy"], r"Weight tensor 'w_nan' in '.*/w_nan\.npy' has "
                                           r"non-finite values"),
    ([*_O, "--weights", "{fx}/w.npz", "--weights-pattern", "k_*"],
     r"No 2-D floating-point tensor in '.*/w\.npz' matches the pattern 'k_\*'"),
    ([*_O, "--sweep", "{fx}/none.toml"], r"Cannot read the sweep file '.*/none\.toml' \(No such "
                                         r"file or directory\)"),
    ([*_O, "--sweep", "{fx}/latin1.toml"], r"The sweep file '.*/latin1\.toml' is not UTF-8 "
                                           r"text \(byte 0xe9 at offset 26\)"),
    ([*_O, "--sweep", "{fx}/broken.toml"], r"The sweep file '.*/broken\.toml' is not valid "
                                           r"TOML \(Unclosed array \(at end of document\)\)"),
    ([*_O, "--sweep", "{fx}/unknown.toml"], r"Unknown key 'colour' in sweep file "
                                            r"'.*/unknown\.toml'; known keys are .*"),
    ([*_O, "--sweep", "{fx}/typed.toml"], r"Key 'rows' in sweep file '.*/typed\.toml' must "
                                          r"be a whole number or a list of whole numbers, "
                                          r"not 'four'"),
    ([*_O, "--sweep", "{fx}/bad_rows.toml"], r"rows must be between 1 and 64, not 0"),
    ([*_O, "--dask", "localhost"], r"--dask 'localhost' is not a scheduler address of the "
                                   r"form tcp://HOST:PORT"),
    ([*_O, "--dask", "tcp://localhost"], r"--dask 'tcp://localhost' is not a scheduler "
                                         r"address of the form tcp://HOST:PORT"),
    ([*_O, "--dask", "http://localhost:8786"], r"--dask 'http://localhost:8786' is not a "
                                               r"scheduler address of the form "
                                               r"tcp://HOST:PORT"),
    ([*_O, "--dask", "tcp://localhost:99999"], r"--dask 'tcp://localhost:99999' is not a "
                                               r"scheduler address of the form "
                                               r"tcp://HOST:PORT"),
    ([*_O, "--dask", "tcp://127.0.0.1:{port}"], r"--dask 'tcp://127\.0\.0\.1:\d+' cannot be "
                                                r"reached \(Connection refused\)"),
    ([*_O, "--no-plots", "1"], r"unrecognized arguments: 1"),
    # the model study
    ([*_O, "--model", "{fx}/none"], r"The checkpoint directory '.*/none' does not exist"),
    ([*_O, "--model", "{fx}/a_file"], r"The checkpoint directory '.*/a_file' does not "
                                      r"exist"),
    ([*_O, "--model", "{fx}/read_only"], r"The checkpoint '.*/read_only' has no "
                                         r"config\.json"),
    ([*_O, "--model", "{fx}/bert_partial"], r"model\.safetensors of the checkpoint "
                                            r"'.*/bert_partial' has no tensor "
                                            r"encoder\.layer\.1\.output\.dense\.weight "
                                            r"\(a partial checkpoint\)"),
    ([*_O, "--model", "{fx}/bert_no_weights"], r"The checkpoint '.*/bert_no_weights' has no "
                                               r"model\.safetensors"),
    ([*_O, "--model", "{fx}/bert_no_tok"], r"The checkpoint '.*/bert_no_tok' has neither "
                                           r"tokenizer\.json nor vocab\.txt"),
    ([*_O, "--model", "{fx}/roberta"], r"The checkpoint '.*/roberta' is a 'roberta' model, "
                                       r"not a BERT-family encoder \(model_type 'bert'\)"),
    ([*_O, "--model", "{fx}/bert", "--text", "{fx}/empty.txt"],
     r"The --text file '.*/empty\.txt' holds no sentence"),
    ([*_O, "--model", "{fx}/bert", "--text", "{fx}/missing.txt"],
     r"Cannot read the --text file '.*/missing\.txt' \(No such file or directory\)"),
    ([*_O, "--model", "{fx}/bert", "--calibration", "{fx}/empty.txt"],
     r"The --calibration file '.*/empty\.txt' holds no sentence"),
    ([*_O, "--model", "{fx}/bert", "--rank", "65"],
     r"--rank 65 is larger than layer 0 q \(64 x 64\) allows \(at most 64\)"),
    ([*_O, "--model", "{fx}/bert", "--rank", "-1"], r"--rank must be .*"),
    ([*_O, "--model", "{fx}/bert", "--prune", "random"],
     r"--prune 'random' is not one of magnitude, wanda, sparsegpt, unstructured"),
    ([*_O, "--model", "{fx}/bert", "--quant", "awq"], r"--quant 'awq' is not one of rtn, gptq"),
    ([*_O, "--model", "{fx}/bert", "--order", "pq,"], r"--order 'pq,' has an empty item"),
    ([*_O, "--model", "{fx}/bert", "--smooth", "smoothquant:2"],
     r"--smooth 'smoothquant:2' is not none, awq or smoothquant:ALPHA with ALPHA in \[0, 1\]"),
    ([*_O, "--model", "{fx}/bert", "--sentences", "0"], r"--sentences must be .*"),
    ([*_O, "--model", "{fx}/bert", "--format", "int8", "--quant", "gptq"],
     r"--quant gptq needs MX weight formats, not int8"),
    ([*_O, "--prune", "wanda"], r"--prune belongs to the model study and needs --model"),
    # model-study keys in a sweep file
    ([*_O, "--sweep", "{fx}/m_prune.toml"], r"Key 'prune' in sweep file '.*/m_prune\.toml' has "
                                            r"'random', which is not one of magnitude, wanda, "
                                            r"sparsegpt, unstructured"),
    ([*_O, "--sweep", "{fx}/m_type.toml"], r"Key 'rank' in sweep file '.*/m_type\.toml' must "
                                           r"be a whole number or a list of whole numbers, "
                                           r"not 'half'"),
    ([*_O, "--sweep", "{fx}/m_neg.toml"], r"Key 'rank' in sweep file '.*/m_neg\.toml' must be "
                                          r"at least 0, not -2"),
    ([*_O, "--sweep", "{fx}/m_extra.toml"],
     r"Key 'smooth' in \[\[extra\]\] table 1 of sweep file '.*/m_extra\.toml' has "
     r"'smoothquant:7', which is not none, awq or smoothquant:ALPHA with ALPHA in \[0, 1\]"),
    ([*_O, "--sweep", "{fx}/m_extra_text.toml"],
     r"Unknown key 'text' in \[\[extra\]\] table 1 of sweep file '.*/m_extra_text\.toml'; "
     r"known keys are .*"),
    ([*_O, "--sweep", "{fx}/m_rank.toml"],
     r"Key 'rank' in \[\[extra\]\] table 1 of sweep file '.*/m_rank\.toml' has rank 65, "
     r"which is larger than layer 0 q \(64 x 64\) allows \(at most 64\)"),
    ([*_O, "--sweep", "{fx}/m_nomodel.toml"],
     r"Key 'order' in \[\[extra\]\] table 1 of sweep file '.*/m_nomodel\.toml' belongs to "
     r"the model study and needs --model \(or a 'model' key\)"),
    ([*_O, "--sweep", "{fx}/m_missing.toml"], r"The checkpoint directory '.*/none' does not "
                                              r"exist"),
    ([*_O, "--sweep", "{fx}/m_text.toml"], r"The --text file '.*/empty\.txt' holds no "
                                           r"sentence"),
    ([*_O, "--sweep", "{fx}/m_gptq.toml"], r"--quant gptq needs MX weight formats, not int8"),
    # --energy (issue #14)
    ([*_O, "--energy"], r"--energy needs --liberty \(the generic cells\.lib has no power "
                        r"data\)"),
    ([*_O, "--data", "heavy"], r"--data heavy needs --energy"),
    ([*_O, "--energy", "--liberty", "osu018", "--data", "uniform"],
     r"--data must be one of gaussian, .*, halfzero, zerotiles25, .*, not 'uniform'"),
    ([*_O, "--energy", "--liberty", "{fx}/none.lib"],
     r"The liberty file '.*/none\.lib' does not exist"),
]

#: ``--liberty``/``--clock-ps`` of the sweep: the same check as ``python -m synth``'s.
_DSE += [
    ([*_O, "--liberty", "{fx}/none.lib"], r"The liberty file '.*/none\.lib' does not exist"),
    ([*_O, "--liberty", "osu018", "--clock-ps", "-1"], r"--clock-ps must be a positive "
                                                        r"number of ps, not '-1'"),
    ([*_O, "--liberty", "osu018", "--clock-ps", "nan"], r"--clock-ps must be a positive "
                                                         r"number of ps, not 'nan'"),
    ([*_O, "--clock-ps", "4000"], r"--clock-ps 4000 needs --liberty \(the generic "
                                  r"cells\.lib has no timing\)"),
    ([*_O, "--liberty", "{fx}/w.txt"], r"The liberty file '.*/w\.txt' has a syntax error "
                                       r"near token 0 \('1 2 3'\)"),
    # the model study times one engine run of its FFN-in GEMM; it must fit the buffers
    ([*_O, "--liberty", "osu018", "--model", "{fx}/bert", "--k-max", "32"],
     r"The model's FFN-in engine run \d+x64x64 does not fit nmmx_os_8x8_\w+: GEMM "
     r"K=64 does not fit this engine \(k_max=32\); choose one with --gemm"),
]

_TABLE = [
    (["--liberty", "{fx}/none.lib"], r"The liberty file '.*/none\.lib' does not exist"),
    (["--liberty", "osu018", "--liberty", ","], r"The liberty list ',' names no file"),
    (["--clock-ps", "0"], r"--clock-ps must be a positive number of ps, not '0'"),
    (["--json", "{tmp}"], r"The --json file '.*' is a directory"),
    (["--markdown", "{fx}/a_file/t.md"], r"The --markdown file '.*/a_file/t\.md' cannot be "
                                         r"created: '.*/a_file' is a file, not a directory"),
    (["--before", "{fx}/none.json"], r"Cannot read the --before file '.*/none\.json' \(No such "
                                      r"file or directory\)"),
    (["--before", "{fx}/w.txt"], r"The --before file '.*/w\.txt' is not valid JSON"),
    (["--before", "{fx}/other.json"], r"The --before file '.*/other\.json' was not written "
                                      r"by python -m synth\.table \(schema 1\)"),
    (["--yosys", "/no/such/yosys"], r"Yosys executable '/no/such/yosys' does not exist"),
    (["--energy", "--before", "{fx}/other.json"],
     r"--before compares timing tables; run it without --energy"),
    (["--energy", "--units"],
     r"--units measures the timing of the units; run it without --energy"),
    (["--energy", "--json", "{tmp}"], r"The --json file '.*' is a directory"),
]

_DSE_OUTPUT = [
    pytest.param("dse", ["-o", "{fx}/a_file"], r"The output directory .*a_file.*",
                 id="dse-out-file"),
    pytest.param("dse", ["-o", "{fx}/a_file/sub"], r"The output directory .*a_file.*",
                 id="dse-out-under-file"),
]


def _rows():
    rows = []
    for cli in CONFIG_CLIS:
        extra = _O if cli == "dse" else []
        for argv, msg in _config_rows(cli):
            rows.append(pytest.param(cli, [*extra, *argv], msg,
                                     id=f"{cli}-{'-'.join(argv) or 'none'}"))
        if cli != "dse":
            for argv, msg in _modes_rows():
                rows.append(pytest.param(cli, argv, msg, id=f"{cli}-{'-'.join(argv)}"))
    for cli, argv, msg in _MODES_ONLY:
        rows.append(pytest.param(cli, argv, msg, id=f"{cli}-{'-'.join(argv)}"))
    for cli, table in (("sim", _SIM), ("gen", _GEN), ("synth", _SYNTH), ("dse", _DSE),
                       ("synth.table", _TABLE)):
        for argv, msg in table:
            rows.append(pytest.param(cli, argv, msg, id=f"{cli}-{'-'.join(argv) or 'none'}"))
    return rows + _SIM_OUTPUT + _GEN_OUTPUT + _SYNTH_OUTPUT + _DSE_OUTPUT


ROWS = _rows()


def _check(code, out, err, message, fx, tmp):
    assert "Traceback" not in out + err, err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    pattern = "^error: " + message.replace("{tmp}", re.escape(str(tmp))) + "$"
    assert re.match(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("cli, argv, message", ROWS)
def test_bad_invocation(cli, argv, message, fixtures, tmp_path, monkeypatch):
    before = _tree(fixtures)
    argv = _expand(argv, fixtures, tmp_path)
    code, out, err = run_in_process(cli, argv, monkeypatch, tmp_path)
    _check(code, out, err, message, fixtures, tmp_path)
    assert _tree(tmp_path) == {}, "the command wrote into its working directory"
    assert _tree(fixtures) == before, "the command changed its input files"


def test_table_size():
    assert len(ROWS) >= 100


#: Rows that also run as real subprocesses: same code, same stderr as in-process.
SUBPROCESS_ROWS = [
    ("gen", ["--sparsity", "5:4"]),
    ("sim", ["--seed", "-5"]),
    ("sim", ["--replay", "{fx}/truncated.npz"]),
    ("synth", ["--yosys", "{fx}/not_exec"]),
    ("dse", [*_O, "--weights", "{fx}/w_object.npy"]),
    ("dse", [*_O, "--sweep", "{fx}/latin1.toml"]),
]


@pytest.mark.parametrize("cli, argv", SUBPROCESS_ROWS)
def test_in_process_harness_is_faithful(cli, argv, fixtures, tmp_path, monkeypatch):
    argv = _expand(argv, fixtures, tmp_path)
    real = run_subprocess(cli, argv, tmp_path)
    assert real[0] == 2 and "Traceback" not in real[2], real[2]
    here = run_in_process(cli, argv, monkeypatch, tmp_path)
    assert here == real
    assert _tree(tmp_path) == {}


def test_harness_catches_late_checks(fixtures, tmp_path, monkeypatch):
    """A valid invocation reaches the work, which the harness refuses: a row whose check
    came after the work started cannot pass."""
    with pytest.raises(WorkStarted):
        run_in_process("sim", ["--replay", str(fixtures / "good.npz")], monkeypatch, tmp_path)


def test_good_replay_fixture_loads(fixtures):
    """The bad replay fixtures differ from this one in one entry each."""
    config, case = sim.run.load_replay(fixtures / "good.npz")
    assert config == REPLAY_CONFIG
    assert (case.m, case.k, case.n, case.data, case.seed) == (3, 40, 3, "gaussian", 1)
    assert case.enc.a_codes.shape == (3, 64)


# -- help texts, broken pipes, --jobs ---------------------------------------------------------

@pytest.mark.parametrize("cli", list(MAINS))
def test_help_has_one_style(cli, tmp_path, monkeypatch):
    code, out, err = run_in_process(cli, ["--help"], monkeypatch, tmp_path)
    assert (code, err) == (0, "")
    paragraphs = out.split("\n\n")
    description = paragraphs[1]
    assert "\n" not in description and description[0].isupper() and description.endswith(".")
    epilog = paragraphs[-1].rstrip("\n").splitlines()
    assert epilog[0] == "Examples:"
    assert epilog[1].startswith(f"  python -m {cli} ")
    for marker in ("``", "::", ".. ", "\\\\"):
        assert marker not in out


@pytest.mark.parametrize("cli, argv", [("gen", ["--list-formats"]), ("sim", ["--list-formats"]),
                                       ("synth", ["--list-formats"]),
                                       ("dse", ["--list-formats"]), ("dse", ["--help"])])
def test_closed_stdout_is_quiet(cli, argv, tmp_path):
    """``python -m gen --list-formats | head -0``: the reader is gone before the first
    write; the command ends without a BrokenPipeError traceback."""
    r, w = os.pipe()
    os.close(r)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        res = subprocess.run([sys.executable, "-m", cli, *argv], cwd=tmp_path, env=env,
                             stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert res.stderr == ""
    # argparse's help printer swallows the write error itself (exit 0); other output
    # reaches cli_main's handler (exit 1).
    assert res.returncode in (0, 1)


def test_jobs_are_capped_with_a_note():
    cores = dse_cli.usable_cores()
    assert dse_cli.capped_jobs(1, 5) == (1, None)
    jobs, note = dse_cli.capped_jobs(cores + 3, cores + 10)
    assert jobs == cores
    assert note == (f"dse: --jobs {cores + 3} capped to {cores} ({cores + 10} point(s), "
                    f"{cores} usable core(s))")
    assert dse_cli.capped_jobs(8, 1)[0] == 1


def test_dse_prints_the_jobs_cap(tmp_path, monkeypatch, capsys):
    seen = {}

    def record(configs, settings, out, *, jobs, **kw):
        seen["jobs"] = jobs
        raise WorkStarted

    monkeypatch.setattr(dse_cli, "run_sweep", record)
    with pytest.raises(WorkStarted):
        dse_cli.main(["-o", str(tmp_path / "out"), "--rows", "2", "--cols", "2",
                      "--jobs", "64", "--no-progress"])
    assert seen["jobs"] == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"dse: --jobs 64 capped to 1 (1 point(s), {dse_cli.usable_cores()} "
                      f"usable core(s))")


def test_dask_address_reachable(monkeypatch):
    """A listening socket passes the reachability check."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        assert dse_cli.check_dask_address(addr) == addr
