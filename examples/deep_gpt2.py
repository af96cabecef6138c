"""A 48-layer GPT-2 (built from a config, tiny width) with two planted dead MLP blocks: the
console summary groups sites by block and leads with the worst. Run: python examples/deep_gpt2.py"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import transformers

import gradsight as gs

torch.manual_seed(0)
cfg = transformers.GPT2Config(n_layer=48, n_head=2, n_embd=16, vocab_size=50, n_positions=16,
                              bos_token_id=0, eos_token_id=0)  # fmt: skip
model = transformers.GPT2LMHeadModel(cfg)
with torch.no_grad():  # plant: GELU at -100 passes nothing, so blocks 40 and 41 are dead
    for i in (40, 41):
        model.transformer.h[i].mlp.c_fc.bias.fill_(-100.0)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
with gs.watch(model, every=1) as mon:
    for _ in range(4):
        ids = torch.randint(0, 50, (4, 8))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        mon.step()
rep = mon.report()
print(rep)
rep.to_html("gpt2_48.html")
