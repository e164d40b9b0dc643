"""Liberty text below :mod:`synth.nldm`'s parsed model.

* :func:`eval_function`: the Boolean value of a ``function`` string (``"!(A&B)"``,
  ``"(A B)+C'"``) for given pin values, with which :mod:`synth.nldm` recognises the NAND2
  and inverter cells by what they compute rather than by name;
* :func:`merged_liberty_text`: one liberty text from a set split by cell family, since
  Yosys's ``dfflibmap`` and ``abc`` take one file.
"""

import re
from pathlib import Path

__all__ = ["eval_function", "merged_liberty_text"]

_FN_TOKEN = re.compile(r"\s*([A-Za-z_][\w\[\]]*|[01]|[!'*&+|^()])")


def eval_function(expr, env):
    """Value of a liberty ``function`` string for pin values ``env`` (dict of str to bool).

    Grammar: ``or := xor (('+'|'|') xor)*``, ``xor := and ('^' and)*``,
    ``and := unary (('*'|'&')? unary)*`` (juxtaposition is AND), ``unary := '!' unary |
    atom "'"*``, ``atom := pin | 0 | 1 | '(' or ')'``.
    """
    toks = _FN_TOKEN.findall(expr)
    if "".join(toks) != re.sub(r"\s+", "", expr):
        raise ValueError(expr)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        pos[0] += 1
        return toks[pos[0] - 1]

    def atom():
        t = take()
        if t == "(":
            v = p_or()
            if take() != ")":
                raise ValueError(expr)
        elif t in ("0", "1"):
            v = t == "1"
        elif t is not None and (t[0].isalpha() or t[0] == "_"):
            v = env[t]
        else:
            raise ValueError(expr)
        while peek() == "'":
            take()
            v = not v
        return v

    def unary():
        if peek() == "!":
            take()
            return not unary()
        return atom()

    def p_and():
        v = unary()
        while peek() is not None and peek() not in ("+", "|", "^", ")"):
            if peek() in ("*", "&"):
                take()
            v = unary() and v
        return v

    def p_xor():
        v = p_and()
        while peek() == "^":
            take()
            v = v != p_and()
        return v

    def p_or():
        v = p_xor()
        while peek() in ("+", "|"):
            take()
            v = p_xor() or v
        return v

    v = p_or()
    if pos[0] != len(toks):
        raise ValueError(expr)
    return v


def _top_level_spans(text):
    """``(library header, [(kind, name, start, end)], closing index)`` of a liberty text.

    Spans cover each top-level statement inside the ``library`` group (comments removed
    beforehand by the caller).
    """
    from .nldm import LibraryError
    m = re.search(r"\blibrary\s*\(([^)]*)\)\s*\{", text)
    if not m:
        raise LibraryError("A liberty text has no library group")
    pos, depth, spans = m.end(), 1, []
    start = pos
    scan = re.compile(r'"(?:[^"\\]|\\.)*"|[{};]')
    head_kind = None
    for tok in scan.finditer(text, pos):
        t = tok.group(0)
        if t == "{":
            if depth == 1:
                km = re.match(r"\s*(\w+)\s*\(\s*\"?([^)\"]*)\"?\s*\)\s*$",
                              text[start:tok.start()])
                head_kind = (km.group(1), km.group(2).strip()) if km else ("?", "")
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return m.group(0), spans, tok.start()
            if depth == 1:
                spans.append((head_kind[0], head_kind[1], start, tok.end()))
                start = tok.end()
        elif t == ";" and depth == 1:
            spans.append(("attr", "", start, tok.end()))
            start = tok.end()
    raise LibraryError("A liberty text's library group is not closed")


def merged_liberty_text(paths):
    """One liberty text holding every cell of a set: the first file's header, each
    library-level group (templates, operating conditions, ...) once (first definition
    wins), then all cells.  Yosys's ``dfflibmap`` and ``abc`` take one liberty only."""
    from .nldm import _NOISE, _read_text
    paths = [Path(p) for p in paths]
    out, seen, cells = [], set(), []
    header = None
    for k, path in enumerate(paths):
        text = _NOISE.sub(" ", _read_text(path))
        head, spans, _close = _top_level_spans(text)
        if header is None:
            header = head
        for kind, name, s, e in spans:
            chunk = text[s:e].strip()
            if kind == "cell":
                cells.append(chunk)
            elif kind == "attr":
                if k == 0:
                    out.append(chunk)
            elif (kind, name) not in seen:
                seen.add((kind, name))
                out.append(chunk)
    return header + "\n" + "\n".join(out) + "\n" + "\n".join(cells) + "\n}\n"
