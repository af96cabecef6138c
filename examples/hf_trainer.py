"""gradsight in a Hugging Face Trainer run: a tiny GPT-2 built from a config (no download) on
random token ids, gradient accumulation 2. Run: python examples/hf_trainer.py"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import transformers

from gradsight.integrations.transformers import GradsightCallback

torch.manual_seed(0)
cfg = transformers.GPT2Config(n_layer=4, n_head=2, n_embd=32, vocab_size=100, n_positions=32,
                              bos_token_id=0, eos_token_id=0)  # fmt: skip
model = transformers.GPT2LMHeadModel(cfg)
ids = torch.randint(0, 100, (256, 16))
data = [{"input_ids": x, "labels": x} for x in ids]

out = tempfile.mkdtemp()
cb = GradsightCallback(every=5, html=True)
args = transformers.TrainingArguments(
    output_dir=out, max_steps=40, per_device_train_batch_size=8, gradient_accumulation_steps=2,
    logging_steps=20, report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
)  # fmt: skip
trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
trainer.train()
print(cb.report())
print("html:", os.path.relpath(cb.html_path, out), "in the output dir")
