"""Loads a makemore-rs MLP checkpoint with safetensors.torch and computes its dev loss.

    python3 docs/checkpoint_dev_loss.py runs/example-mlp/model.safetensors
"""
import random, sys
import torch, torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1] if len(sys.argv) > 1 else "runs/example-mlp/model.safetensors"
with safe_open(path, "pt") as f:
    meta = f.metadata()
stoi = {c: i for i, c in enumerate(meta["vocab"])}
block_size = int(meta["block_size"])

# The lecture's dev split and dataset.
words = open("data/names.txt").read().splitlines()
random.seed(42)
random.shuffle(words)
X, Y = [], []
for w in words[int(0.8 * len(words)):int(0.9 * len(words))]:
    context = [0] * block_size
    for ch in w + ".":
        X.append(context)
        Y.append(stoi[ch])
        context = context[1:] + [stoi[ch]]
X, Y = torch.tensor(X), torch.tensor(Y)

# The five lines: load the tensors, run the forward pass, take the loss.
t = load_file(path)
emb = t["C"][X]
h = torch.tanh(emb.view(emb.shape[0], -1) @ t["W1"] + t["b1"])
logits = h @ t["W2"] + t["b2"]
print(f"dev loss {F.cross_entropy(logits, Y).item():.4f}")
