"""Loads a makemore-rs checkpoint of one of makemore.py's models into makemore.py's own class and
computes its loss on the lectures' dev split, to compare with `makemore eval`.

    python3 docs/makemore_checkpoint.py runs/transformer/model.safetensors [--data data/names.txt]
                                        [--makemore ../shared/reference/makemore.py]

prints the keys load_state_dict reports (only the attention's causal-mask buffers `.attn.bias`
should be missing: makemore.py registers them as buffers, they are not learnt) and the dev loss.
"""
import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from pytorch_zoo import ROOT, datasets, import_makemore, split_loss  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("checkpoint")
ap.add_argument("--data", default="data/names.txt")
ap.add_argument("--makemore", default=str(ROOT.parent / "shared/reference/makemore.py"))
a = ap.parse_args()
mm = import_makemore(a.makemore)
train, dev, test = datasets(mm, a.data)

# The model's kind and sizes are in the checkpoint's metadata.
with safe_open(a.checkpoint, "pt") as f:
    meta = f.metadata()
kind = meta["kind"]
sizes = {k: int(meta[k]) for k in ["n_layer", "n_head", "n_embd", "n_embd2"] if k in meta}
config = mm.ModelConfig(vocab_size=int(meta["vocab_size"]), block_size=int(meta["block_size"]), **sizes)

# The snippet: makemore.py's class, and the checkpoint's state dict by name.
model = {"transformer": lambda: mm.Transformer(config), "bow": lambda: mm.BoW(config),
         "rnn": lambda: mm.RNN(config, cell_type="rnn"), "gru": lambda: mm.RNN(config, cell_type="gru"),
         "mlp-makemore": lambda: mm.MLP(config), "bigram-makemore": lambda: mm.Bigram(config)}[kind]()
state = {k: v for k, v in load_file(a.checkpoint).items() if not k.startswith("adamw.")}
missing, unexpected = model.load_state_dict(state, strict=False)

print(f"{kind}: missing {missing}, unexpected {unexpected}")
print(f"dev loss {split_loss(model, dev):.4f}")
