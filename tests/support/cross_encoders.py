"""A small cross-encoder made on the spot: real files of the kind a reranker download brings.

No cross-encoder ships offline, so the tests build one: BERT for sequence classification with one
output, two small layers, weights drawn from a fixed seed, and all-MiniLM-L6-v2's tokenizer. It loads
and scores through sentence-transformers' CrossEncoder like any downloaded one; its scores follow no
notion of relevance, so tests compare the app's order with the model's own scores, never with truth.
"""

from __future__ import annotations

from pathlib import Path


def make_cross_encoder(folder: Path, tokenizer_source: Path) -> Path:
    """Write the model's config.json, model.safetensors and tokenizer files into ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        initializer_range=0.2)  # wide enough that passages get distinct scores
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    try:
        model = BertForSequenceClassification(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def repo_files(folder: Path) -> dict[str, Path]:
    """The folder's files as a FakeHub repository holds them."""
    return {path.name: path for path in folder.iterdir() if path.is_file()}
