"""The generated Verilog is pinned: sha256 of ``python -m gen`` output for regression configs.

A restructuring of ``hw/`` must leave the Verilog byte-identical; a change that alters it
(a bug fix, an intended new attribute) updates ``tests/verilog_hashes.json`` in the same
commit and says why.  Regenerate the table with ``python tests/test_verilog_hashes.py``.
"""

import hashlib
import json
import sys
from pathlib import Path

import pytest

from gen.generate import generate
from golden import Config

TABLE = Path(__file__).resolve().parent / "verilog_hashes.json"

# Small buffers and arrays keep generation quick; both dataflows, int8, MX formats,
# mixed W4A8, sparsities 1:1 .. 1:16, a 1x1 and non-square arrays.
SMALL = dict(m_max=8, k_max=64, n_max=8)
CONFIGS = {
    "os_1x1_int8_1of1": dict(rows=1, cols=1, a_format="int8", w_format="int8",
                             sparsity=(1, 1), block_size=32),
    "os_2x3_mxfp8e4m3_2of4": dict(rows=2, cols=3, sparsity=(2, 4)),
    "os_3x2_mxfp4e2m1_1of16": dict(rows=3, cols=2, a_format="mxfp4_e2m1",
                                   w_format="mxfp4_e2m1", sparsity=(1, 16)),
    "os_2x2_w4a8_2of8": dict(rows=2, cols=2, a_format="mxfp8_e4m3",
                             w_format="mxfp4_e2m1", sparsity=(2, 8)),
    "os_2x2_int8_2of4": dict(rows=2, cols=2, a_format="int8", w_format="int8",
                             sparsity=(2, 4)),
    "ws_1x1_int8_1of1": dict(rows=1, cols=1, a_format="int8", w_format="int8",
                             sparsity=(1, 1), dataflow="ws"),
    "ws_2x3_mxfp8e4m3_2of4": dict(rows=2, cols=3, sparsity=(2, 4), dataflow="ws"),
    "ws_3x2_w4a8_1of16": dict(rows=3, cols=2, a_format="mxfp8_e4m3",
                              w_format="mxfp4_e2m1", sparsity=(1, 16), dataflow="ws"),
    "ws_4x2_mxfp4e2m1_1of1_b8": dict(rows=4, cols=2, a_format="mxfp4_e2m1",
                                     w_format="mxfp4_e2m1", sparsity=(1, 1),
                                     block_size=8, dataflow="ws"),
    "ws_4x3_mxfp6e2m3_2of4_b8": dict(rows=4, cols=3, a_format="mxfp6_e2m3",
                                     w_format="mxfp6_e2m3", sparsity=(2, 4),
                                     block_size=8, dataflow="ws"),
    "ws_2x2_int8_2of4": dict(rows=2, cols=2, a_format="int8", w_format="int8",
                             sparsity=(2, 4), dataflow="ws"),
}


def _config(key):
    return Config(**{**SMALL, **CONFIGS[key]})


def verilog_hash(key, out_dir):
    v_path, _ = generate(_config(key), out_dir, name=f"nmmx_{key}")
    return hashlib.sha256(v_path.read_bytes()).hexdigest()


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_verilog_hash(key, tmp_path):
    table = json.loads(TABLE.read_text())
    assert verilog_hash(key, tmp_path) == table[key], (
        f"the Verilog of {key} changed: if intended, explain it in the commit and "
        f"regenerate {TABLE.name}")


def test_table_covers_configs():
    assert sorted(json.loads(TABLE.read_text())) == sorted(CONFIGS)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        table = {key: verilog_hash(key, Path(d)) for key in sorted(CONFIGS)}
    TABLE.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    print(f"wrote {TABLE}", file=sys.stderr)
