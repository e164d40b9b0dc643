"""A tiny random BERT checkpoint that the model-study tests build themselves."""

import json
from pathlib import Path

import numpy as np

#: Hyper-parameters of the tiny model (MX blocks of 32 fit its widths).
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128, "max_position_embeddings": 64}
DATA = Path(__file__).resolve().parent.parent / "dse" / "model" / "data"


def _vocab():
    words = {}
    for name in ("calibration.txt", "eval.txt"):
        for line in (DATA / name).read_text().splitlines():
            for w in line.lower().replace(".", " ").replace(",", " ").split():
                words[w] = words.get(w, 0) + 1
    common = sorted(words, key=lambda w: (-words[w], w))[:200]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"))
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
            + [f"##{c}" for c in chars] + [w for w in common if w not in chars])


def write_tokenizer(path, vocab):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok.save(str(path))


def make_tiny_bert(path, *, seed=0, sentence_transformers=True, drop=(), config=None):
    """Write a random BERT checkpoint into ``path`` (config.json, model.safetensors,
    tokenizer.json, and the sentence-transformers files); ``drop`` names tensors to leave
    out (a partial checkpoint), ``config`` overrides config.json keys."""
    from safetensors.numpy import save_file
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    h, f, nl = TINY["hidden_size"], TINY["intermediate_size"], TINY["num_hidden_layers"]
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
           "layer_norm_eps": 1e-12, "vocab_size": len(vocab), "type_vocab_size": 2,
           "position_embedding_type": "absolute", **TINY, **(config or {})}
    rng = np.random.default_rng(seed)
    t = {"embeddings.word_embeddings.weight": rng.normal(0, 0.5, (len(vocab), h)),
         "embeddings.position_embeddings.weight": rng.normal(0, 0.1, (64, h)),
         "embeddings.token_type_embeddings.weight": rng.normal(0, 0.1, (2, h)),
         "embeddings.LayerNorm.weight": 1 + rng.normal(0, 0.1, h),
         "embeddings.LayerNorm.bias": rng.normal(0, 0.1, h)}
    shapes = {"attention.self.query": (h, h), "attention.self.key": (h, h),
              "attention.self.value": (h, h), "attention.output.dense": (h, h),
              "intermediate.dense": (f, h), "output.dense": (h, f)}
    for i in range(nl):
        p = f"encoder.layer.{i}."
        for name, (o, k) in shapes.items():
            w = rng.normal(0, 1 / np.sqrt(k), (o, k))
            w[:, rng.integers(0, k, 2)] *= 8      # a few outlier input channels
            t[p + name + ".weight"] = w
            t[p + name + ".bias"] = rng.normal(0, 0.02, o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = 1 + rng.normal(0, 0.1, h)
            t[p + ln + ".bias"] = rng.normal(0, 0.1, h)
    t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items() if k not in drop}
    save_file(t, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(cfg))
    write_tokenizer(path / "tokenizer.json", vocab)
    if sentence_transformers:
        (path / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
        (path / "1_Pooling").mkdir(exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": h, "pooling_mode_mean_tokens": True}))
        (path / "sentence_bert_config.json").write_text(json.dumps(
            {"max_seq_length": 64, "do_lower_case": False}))
    return path
