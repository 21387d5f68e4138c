"""PyTorch's side of the zoo's training-step bench: makemore.py's own model classes (imported from
the reference copy, never copied here), trained as makemore trains them, timed like
`bench/pytorch_bench.py`.

    python3 bench/pytorch_zoo.py WORKLOAD [--data data/names.txt] [--threads N] [--steps N]
                                 [--repeats N] [--model KIND] [--seed S] [--makemore PATH]

prints one JSON object on stdout (progress goes to stderr). The data is makemore's CharDataset
(vocabulary: the sorted characters as ids 1..26, 0 the start/end token; block_size = the longest
word + 1, 16 on names.txt; x = [0, w...] padded with 0, y = [w..., 0, -1, -1...], -1 being ignored
by the loss) over the lectures' split, not makemore's: random.seed(42), random.shuffle(words),
train the first 80%, dev the next 10%, test the rest. Every model has makemore's default config
(n_layer 4, n_head 4, n_embd 64, n_embd2 64, vocab 27, block 16) and optimizer (AdamW, lr 5e-4,
weight decay 0.01, betas (0.9, 0.99), eps 1e-8), batch 32. The workloads:

  transformer_step  one training step of makemore's Transformer: 32 random train examples
  bow_step          (torch.randint indices, each example built by CharDataset.__getitem__ and
  rnn_step          stacked, as makemore's DataLoader does: the data loading is timed too),
  gru_step          forward with targets, zero_grad(set_to_none=True), backward, AdamW step.
  mlp_step          Milliseconds per step: 20 warm-up steps, then the best of `repeats` blocks
  bigram_step       of `steps` steps. Also "params" (all parameters, lm_head included, as
                    makemore's "model #params" line counts them). transformer_step also gives
                    "macs", the multiply-adds of one forward + backward step, counted
                    analytically over the matmuls only (B batch, T block, C n_embd, V vocab,
                    L n_layer; the attention products are computed over the whole T x T, mask
                    and all):
                        macs = 3 * (L * (12 B T C^2 + 2 B T^2 C) + B T C V)
                    12 C^2 per token and layer = c_attn 3C^2 + attn.c_proj C^2 + mlp.c_fc 4C^2 +
                    mlp.c_proj 4C^2; 2 B T^2 C = q @ k^T plus att @ v over all heads; B T C V =
                    lm_head; the backward is twice the forward (the gradients of both operands).
                    At the defaults: 3 * 105,742,336 = 317,227,008, about 0.32 G.
  train_eval        trains `--model` (transformer, bow, rnn, gru, mlp, bigram) for `steps` steps
                    from torch.manual_seed(seed) set before the model is built (as makemore),
                    then the mean loss over each WHOLE split: the summed NLL of every target
                    that is not -1, over their count. "value" is the training's wall seconds;
                    "train", "dev", "test" the losses. The reference for our Rust models.
"""

import argparse
import contextlib
import importlib.util
import json
import random
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["transformer", "bow", "rnn", "gru", "mlp", "bigram"]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def import_makemore(path):
    """makemore.py as a module. Its top-level `from torch.utils.tensorboard import SummaryWriter`
    needs the tensorboard package, which the models do not: without it, a stub stands in."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"makemore.py not found at {path} (pass --makemore PATH)")
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = None
        sys.modules["torch.utils.tensorboard"] = stub
    spec = importlib.util.spec_from_file_location("makemore", path)
    mm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mm)
    return mm


def datasets(mm, path):
    """makemore's CharDataset over the lectures' 80/10/10 split (words cleaned as
    create_datasets cleans them)."""
    if not Path(path).is_file():
        raise SystemExit(f"no dataset at {path} (pass --data PATH)")
    words = [w.strip() for w in open(path, "r").read().splitlines()]
    words = [w for w in words if w]
    chars = sorted(set("".join(words)))
    max_len = max(len(w) for w in words)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return [mm.CharDataset(ws, chars, max_len) for ws in (words[:n1], words[n1:n2], words[n2:])]


def build(mm, kind, train):
    config = mm.ModelConfig(vocab_size=train.get_vocab_size(), block_size=train.get_output_length(),
                            n_layer=4, n_head=4, n_embd=64, n_embd2=64)
    with contextlib.redirect_stdout(sys.stderr):  # Transformer prints its size
        model = {"transformer": lambda: mm.Transformer(config), "bow": lambda: mm.BoW(config),
                 "rnn": lambda: mm.RNN(config, cell_type="rnn"),
                 "gru": lambda: mm.RNN(config, cell_type="gru"),
                 "mlp": lambda: mm.MLP(config), "bigram": lambda: mm.Bigram(config)}[kind]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01,
                                  betas=(0.9, 0.99), eps=1e-8)
    return config, model, optimizer


def batch(dataset, batch_size=32):
    """A random batch, as makemore's DataLoader builds it: examples by __getitem__, stacked."""
    ix = torch.randint(len(dataset), (batch_size,)).tolist()
    xs, ys = zip(*(dataset[i] for i in ix))
    return torch.stack(xs), torch.stack(ys)


def train(model, optimizer, dataset, steps):
    """`steps` of makemore's training loop, each drawing its own batch."""
    for _ in range(steps):
        X, Y = batch(dataset)
        _, loss = model(X, Y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss


@torch.no_grad()
def split_loss(model, dataset, batch_size=1000):
    """The mean NLL over every non-ignored target of the whole split."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(dataset), batch_size):
        xs, ys = zip(*(dataset[j] for j in range(i, min(i + batch_size, len(dataset)))))
        X, Y = torch.stack(xs), torch.stack(ys)
        logits, _ = model(X)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), Y.view(-1), ignore_index=-1,
                                 reduction="sum").item()
        count += int((Y != -1).sum())
    model.train()
    return total / count


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def transformer_macs(c, batch_size=32):
    B, T, C, V, L = batch_size, c.block_size, c.n_embd, c.vocab_size, c.n_layer
    return 3 * (L * (12 * B * T * C * C + 2 * B * T * T * C) + B * T * C * V)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=[k + "_step" for k in KINDS] + ["train_eval"])
    ap.add_argument("--data", default="data/names.txt")
    ap.add_argument("--makemore", default=str(ROOT.parent / "shared/reference/makemore.py"),
                    help="Karpathy's makemore.py, whose model classes are used")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--steps", type=int, default=200, help="*_step: steps per timed block; "
                    "train_eval: training steps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", choices=KINDS, default="transformer", help="train_eval: the kind")
    ap.add_argument("--seed", type=int, default=3407)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    mm = import_makemore(a.makemore)
    tr, dev, te = datasets(mm, a.data)
    kind = a.model if a.workload == "train_eval" else a.workload[:-len("_step")]
    torch.manual_seed(a.seed)
    config, model, optimizer = build(mm, kind, tr)
    params = sum(p.numel() for p in model.parameters())
    out = {"workload": a.workload, "threads": torch.get_num_threads(), "params": params,
           "torch": torch.__version__}
    log(f"{kind}: {params} parameters, block {config.block_size}, vocab {config.vocab_size}, "
        f"{len(tr)}/{len(dev)}/{len(te)} words, {a.threads} thread(s)")

    if a.workload == "train_eval":
        t = time.perf_counter()
        for done in range(0, a.steps, 1000):  # progress every 1,000 steps
            n = min(1000, a.steps - done)
            loss = train(model, optimizer, tr, n)
            log(f"step {done + n}: loss {loss.item():.4f}")
        seconds = time.perf_counter() - t
        losses = {name: split_loss(model, ds) for name, ds in [("train", tr), ("dev", dev),
                                                                ("test", te)]}
        log(f"losses: {losses}")
        out.update(value=seconds, unit="s", model=kind, steps=a.steps, seed=a.seed, **losses)
    else:
        train(model, optimizer, tr, 20)  # warm up
        best = float("inf")
        for r in range(a.repeats):
            dt = timed(lambda: train(model, optimizer, tr, a.steps))
            best = min(best, dt)
            log(f"block {r + 1}/{a.repeats}: {dt / a.steps * 1e3:.3f} ms/step")
        data = min(timed(lambda: [batch(tr) for _ in range(a.steps)]) for _ in range(a.repeats))
        out.update(value=best / a.steps * 1e3, unit="ms", data_ms=data / a.steps * 1e3)
        if kind == "transformer":
            out["macs"] = transformer_macs(config)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
