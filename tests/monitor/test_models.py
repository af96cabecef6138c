"""The models people train, as they are: Hugging Face transformers built from a config (no
download) and PyTorch's own TransformerEncoder; the catalog's fast derivative paths."""

from __future__ import annotations

import os

import pytest
import torch

import gradsight as gs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:transformers")


def _train_lm(model, vocab, steps=2):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with gs.watch(model, every=1) as mon:
        for _ in range(steps):
            ids = torch.randint(0, vocab, (2, 8))
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    return mon.report()


def test_gpt2_from_config_shows_its_mlp_activations():
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=16)
    torch.manual_seed(0)
    rep = _train_lm(transformers.GPT2LMHeadModel(cfg), 50)
    assert [ls.name for ls in rep.layers] == ["transformer.h.0.mlp.act", "transformer.h.1.mlp.act"]
    assert {ls.activation for ls in rep.layers} == {"gelu"}
    assert all(ls.units == 64 and ls.grad_norm > 0 for ls in rep.layers)
    assert not rep.errors


def test_llama_from_config_shows_its_silu_gates():
    cfg = transformers.LlamaConfig(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                   hidden_size=16, intermediate_size=32, vocab_size=50,
                                   max_position_embeddings=16)  # fmt: skip
    torch.manual_seed(0)
    rep = _train_lm(transformers.LlamaForCausalLM(cfg), 50)
    assert [ls.name for ls in rep.layers] == ["model.layers.0.mlp.act_fn", "model.layers.1.mlp.act_fn"]
    assert {ls.activation for ls in rep.layers} == {"silu"}
    assert rep.layers[0].incoming == "model.layers.0.mlp.gate_proj"


def test_bert_from_config_has_no_double_counted_sites():
    cfg = transformers.BertConfig(num_hidden_layers=2, num_attention_heads=2, hidden_size=16,
                                  intermediate_size=32, vocab_size=50, max_position_embeddings=16)  # fmt: skip
    model = transformers.BertForMaskedLM(cfg)
    rep = _train_lm(model, 50)
    names = [ls.name for ls in rep.layers]
    # the HF GELU modules (which call F.gelu inside) are one site each; the MLM head's too
    assert names == [
        "bert.encoder.layer.0.intermediate.intermediate_act_fn",
        "bert.encoder.layer.1.intermediate.intermediate_act_fn",
        "cls.predictions.transform.transform_act_fn",
    ]
