"""The few facts the area flow needs from a liberty file: cell areas, pins, flip-flops."""

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Liberty", "LIBERTY_PATH"]

#: The generic cell library (areas in NAND2 gate equivalents); see its comment block.
LIBERTY_PATH = Path(__file__).with_name("cells.lib")


@dataclass(frozen=True)
class Liberty:
    """The few facts the flow needs from a liberty file: cell areas, pins, flip-flops.

    Members
    -------
    path : Path
        The liberty file.
    area : dict of str to float
        Cell name -> area (GE for ``cells.lib``).
    outputs : dict of str to str
        Cell name -> its output pin.
    sequential : frozenset of str
        Cells that contain an ``ff`` group.
    """

    path: Path
    area: dict
    outputs: dict
    sequential: frozenset

    @classmethod
    def read(cls, path=LIBERTY_PATH):
        text = Path(path).read_text()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        area, outputs, seq = {}, {}, set()
        # Cells are split at "cell (" so that each chunk holds exactly one cell's groups.
        for chunk in re.split(r"\bcell\s*\(", text)[1:]:
            name = re.match(r"\s*\"?([\w$]+)", chunk).group(1)
            m = re.search(r"\barea\s*:\s*([0-9.eE+-]+)", chunk)
            if not m:
                raise ValueError(f"Liberty cell {name} in {path} has no area")
            area[name] = float(m.group(1))
            for pin, body in re.findall(r"\bpin\s*\(\s*\"?(\w+)\"?\s*\)\s*\{([^}]*)\}", chunk):
                if re.search(r"direction\s*:\s*output", body):
                    outputs[name] = pin
            if re.search(r"\bff\s*\(", chunk):
                seq.add(name)
        return cls(Path(path), area, outputs, frozenset(seq))

