"""PyTorch's side of the zoo's training-step bench: makemore.py's own model classes (imported from
the reference copy, never copied here), trained as makemore trains them, and the lectures'
BatchNorm MLP (part 3) and WaveNet (part 5), written here as the lectures write them, trained as
the lectures train them; timed like `bench/pytorch_bench.py`.

    python3 bench/pytorch_zoo.py WORKLOAD [--data data/names.txt] [--threads N] [--steps N]
                                 [--repeats N] [--model KIND] [--seed S] [--makemore PATH]
                                 [--spec FILE] [--eval-every N]

prints one JSON object on stdout (progress goes to stderr). The data is makemore's CharDataset
(vocabulary: the sorted characters as ids 1..26, 0 the start/end token; block_size = the longest
word + 1, 16 on names.txt; x = [0, w...] padded with 0, y = [w..., 0, -1, -1...], -1 being ignored
by the loss) over the lectures' split, not makemore's: random.seed(42), random.shuffle(words),
train the first 80%, dev the next 10%, test the rest. Every model but train_spec's has makemore's
default config (n_layer 4, n_head 4, n_embd 64, n_embd2 64, vocab 27, block 16) and optimizer
(AdamW, lr 5e-4, weight decay 0.01, betas (0.9, 0.99), eps 1e-8), batch 32. The workloads:

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
                    Every *_step gives "macs", counted alike (step_macs).
  bn_mlp_step       one training step of lecture 3's BatchNorm MLP (block 3, n_embd 10,
                    n_hidden 200; C, W1 * (5/3) / sqrt(30) and no b1, bngain, bnbias, W2 * 0.01,
                    b2 = 0: 12,097 parameters; the batch's mean and Bessel std, the running
                    ones updated under no_grad with momentum 0.001), and
  wavenet_step      one training step of lecture 5's WaveNet (Embedding(27, 24), three times
                    FlattenConsecutive(2), Linear without bias, BatchNorm1d over (0, 1) with
                    Bessel's variance, eps 1e-5, momentum 0.1, Tanh; Linear(128, 27) with its
                    weight * 0.1: 76,579 parameters), as the lectures train them: SGD at lr 0.1,
                    32 context windows (of 3 and 8 characters) drawn by torch.randint from the
                    lectures' train split and indexed out of Xtr, Ytr (timed too), forward,
                    p.grad = None, backward, p.data += -lr * p.grad. Timed as the others.
  train_eval        trains `--model` (transformer, bow, rnn, gru, mlp, bigram) for `steps` steps
                    from torch.manual_seed(seed) set before the model is built (as makemore),
                    then the mean loss over each WHOLE split: the summed NLL of every target
                    that is not -1, over their count. "value" is the training's wall seconds;
                    "train", "dev", "test" the losses. The reference for our Rust models.
  train_spec        trains the Transformer of `--spec FILE`, one of our spec files (specs/*.json,
                    kind "transformer"; its levers as docs/tuning.md documents them, the ones
                    left out at makemore.py's values), for the spec's steps (`--steps` overrides
                    them, the cosine then ending at the new last step), from
                    torch.manual_seed(seed) set before the model is built. The model is
                    makemore.py's Transformer at the spec's sizes with the levers added from
                    outside (build_spec): dropout as nn.Dropout modules hooked onto GPT-2's
                    three residual places (wte + wpe, attention's c_proj, the MLP's c_proj; not
                    the attention weights); tie_weights as wte.weight = lm_head.weight (lm_head's
                    init); rotary as a forward hook on each c_attn turning q and k (RoPE, the
                    rotate-half form, base 10000) and wpe replaced by zeros (no wpe parameter). The training is crates/mm-models/src/train.rs's loop: each step
                    (0-based t) sets the rate lr (t + 1) / warmup while t < warmup, then
                    min_lr + (lr - min_lr) (1 + cos(pi r)) / 2, r = (t - warmup) / (steps -
                    warmup) (lr itself with lr_decay "constant"), draws batch_size words as
                    makemore's DataLoader, forward, backward, clip_grad_norm_(grad_clip) when
                    grad_clip > 0, AdamW (betas (0.9, 0.99), eps 1e-8; with
                    decay_matrices_only the weight decay on parameters of dim >= 2 only).
                    With `--eval-every N` the dev loss every N steps and at the last goes to
                    stderr (and to "dev_curve"). Then, as train_eval, the mean loss over each
                    WHOLE split in model.eval() (dropout off): "train", "dev", "test". "value" is
                    the training's seconds without the periodic dev evaluations
                    ("eval_seconds"); "wall" the whole command's; "spec" every setting used.
"""

import argparse
import contextlib
import importlib.util
import json
import math
import random
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["transformer", "bow", "rnn", "gru", "mlp", "bigram"]
# The lectures' models, which read context windows rather than whole words.
LECTURE_KINDS = ["bn_mlp", "wavenet"]


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


# --- train_spec: our spec files' Transformer and its levers, on makemore.py's Transformer ----

# The levers' defaults: makemore.py's model and training (crates/mm-models/src/registry.rs).
SPEC_DEFAULTS = {"dropout": 0.0, "tie_weights": False, "rotary": False, "batch_size": 32, "lr": 5e-4, "warmup": 0,
                 "lr_decay": "constant", "min_lr": 0.0, "weight_decay": 0.01,
                 "decay_matrices_only": False, "grad_clip": 0.0, "steps": 10_000,
                 # How many tapes our step's batch is cut into: it fixes our rounding only, so
                 # PyTorch, which takes the batch in one piece, reads it and ignores it.
                 "shards": 1}
SPEC_SIZES = ["block_size", "n_layer", "n_head", "n_embd"]


def read_spec(path, steps=None):
    """A spec file of kind "transformer" (specs/*.json), every lever filled in with its default;
    `steps` (when given) overrides the file's, as `makemore train --spec FILE --steps N`."""
    spec = json.loads(Path(path).read_text())
    if spec.get("kind") != "transformer":
        raise SystemExit(f"{path}: train_spec takes a spec of kind \"transformer\", not {spec.get('kind')!r}")
    unknown = set(spec) - set(SPEC_DEFAULTS) - set(SPEC_SIZES) - {"kind"}
    missing = [k for k in SPEC_SIZES if k not in spec]
    if unknown or missing:
        raise SystemExit(f"{path}: unknown settings {sorted(unknown)}, missing {missing}")
    spec = {"kind": "transformer", **{k: spec[k] for k in SPEC_SIZES},
            **{k: spec.get(k, v) for k, v in SPEC_DEFAULTS.items()}}
    if steps is not None:
        spec["steps"] = steps
    if spec["n_embd"] % spec["n_head"]:
        raise SystemExit(f"{path}: n_embd {spec['n_embd']} is not a multiple of n_head {spec['n_head']}")
    if not 0.0 <= spec["dropout"] < 1.0:
        raise SystemExit(f"{path}: dropout {spec['dropout']} is not in [0, 1)")
    if spec["lr_decay"] not in ("constant", "cosine"):
        raise SystemExit(f"{path}: lr_decay {spec['lr_decay']!r} is neither constant nor cosine")
    return spec


def spec_lr(spec, step):
    """The rate at (0-based) `step`, as crates/mm-models/src/train.rs's Schedule: Constant(lr)
    without warmup or decay; else WarmupCosine: lr * (step + 1) / warmup for step < warmup, then
    min_lr + (lr - min_lr) * (1 + cos(pi r)) / 2 with r = (step - warmup) / (steps - warmup)
    (at most 1), min_lr being lr itself when lr_decay is constant."""
    lr, warmup, steps = spec["lr"], spec["warmup"], spec["steps"]
    if warmup == 0 and spec["lr_decay"] == "constant":
        return lr
    min_lr = spec["min_lr"] if spec["lr_decay"] == "cosine" else lr
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(steps - warmup, 0)
    r = 1.0 if span == 0 else min((step - warmup) / span, 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)


class NoPositions(nn.Module):
    """wpe's place with rotary positions: a zero, so that makemore's `tok_emb + pos_emb` is
    `tok_emb` (and the model has no wpe parameter, as our rotary model)."""

    def forward(self, pos):
        return torch.zeros(())


def rotary(qkv, n_head, base=10000.0):
    """c_attn's output [B, T, 3C] with each head's q and k turned by rotary position embeddings
    (crates/mm-tensor/src/ops/rotary.rs): pair i (elements i and i + hs/2) by
    pos * base^(-2i/hs), angles in float64; v unchanged."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    half = hs // 2
    inv_freq = base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angle = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    cos, sin = angle.cos().float()[None, :, None, :], angle.sin().float()[None, :, None, :]

    def turn(x):
        x = x.reshape(B, T, n_head, hs)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).reshape(B, T, C)

    q, k, v = qkv.split(C, dim=2)
    return torch.cat([turn(q), turn(k), v], dim=2)


def build_spec(mm, spec, train):
    """makemore.py's Transformer of the spec's sizes, with the spec's model levers added from
    outside (its classes are not copied), and AdamW with the spec's decay.

    - dropout p > 0: nn.Dropout(p) modules at GPT-2's (nanoGPT's) three places on the residual
      stream, under nanoGPT's names: `transformer.drop` on wte + wpe (a forward pre-hook on the
      first block, or on ln_f without blocks: their input is that sum), `attn.resid_dropout` on
      attention's c_proj output and `mlp.dropout` on the MLP's c_proj output (forward hooks on
      the two c_proj). Not on the attention weights, as our Rust model. The modules hold no
      parameters, so the state_dict keeps makemore's names; model.eval() turns them off.
    - tie_weights: `wte.weight = lm_head.weight`, one Parameter starting from lm_head's
      nn.Linear init (U(+-1/sqrt(n_embd))), as our Rust model (docs/tuning.md).
    - rotary: wpe replaced by NoPositions (zeros) and a forward hook on each block's c_attn that
      turns q and k (rotary(); the attention that follows is makemore's, unchanged).
    - AdamW(betas (0.9, 0.99), eps 1e-8, makemore's); decay_matrices_only: two groups, the
      parameters of dim >= 2 at weight_decay, the others (biases, LayerNorm) at 0."""
    if spec["block_size"] < train.get_output_length():
        raise SystemExit(f"block_size {spec['block_size']} is shorter than the data's "
                         f"{train.get_output_length()}")
    config = mm.ModelConfig(vocab_size=train.get_vocab_size(), block_size=spec["block_size"],
                            n_layer=spec["n_layer"], n_head=spec["n_head"], n_embd=spec["n_embd"])
    with contextlib.redirect_stdout(sys.stderr):  # Transformer prints its size
        model = mm.Transformer(config)
    t = model.transformer
    p = spec["dropout"]
    if p > 0:
        t["drop"] = nn.Dropout(p)
        first = t.h[0] if len(t.h) else t.ln_f
        first.register_forward_pre_hook(lambda m, args: (t.drop(args[0]),) + tuple(args[1:]))
        for block in t.h:
            block.attn.resid_dropout = nn.Dropout(p)
            block.mlp["dropout"] = nn.Dropout(p)
            block.attn.c_proj.register_forward_hook(
                lambda m, i, out, d=block.attn.resid_dropout: d(out))
            block.mlp.c_proj.register_forward_hook(lambda m, i, out, d=block.mlp.dropout: d(out))
    if spec["tie_weights"]:
        t.wte.weight = model.lm_head.weight
    if spec["rotary"]:
        if (spec["n_embd"] // spec["n_head"]) % 2:
            raise SystemExit("rotary positions need heads of an even size")
        t.wpe = NoPositions()
        for block in t.h:
            block.attn.c_attn.register_forward_hook(
                lambda m, i, out, nh=spec["n_head"]: rotary(out, nh))
    params = list(model.parameters())  # shared parameters once
    wd = spec["weight_decay"]
    if spec["decay_matrices_only"]:
        groups = [{"params": [q for q in params if q.dim() >= 2], "weight_decay": wd},
                  {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": wd}]
    optimizer = torch.optim.AdamW(groups, lr=spec_lr(spec, 0), betas=(0.9, 0.99), eps=1e-8)
    return config, model, optimizer


def train_spec(model, optimizer, spec, tr, dev, eval_every=0):
    """The spec's training, as crates/mm-models/src/train.rs's loop: at each step the rate
    spec_lr(step) set on every group, a batch of batch_size words, forward, backward,
    clip_grad_norm_ at grad_clip (when > 0), AdamW. With eval_every, the dev loss (model.eval())
    every eval_every steps and at the last, to stderr. Returns (training seconds without those
    evaluations, their seconds, [(step, dev loss)...])."""
    steps, clip = spec["steps"], spec["grad_clip"]
    params = list(model.parameters())
    train_s = eval_s = 0.0
    curve = []
    t = time.perf_counter()
    for step in range(steps):
        lr = spec_lr(spec, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        X, Y = batch(tr, spec["batch_size"])
        _, loss = model(X, Y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        done = step + 1
        if (eval_every and (done % eval_every == 0 or done == steps)) or done % 1000 == 0:
            now = time.perf_counter()
            train_s += now - t
            msg = f"step {done}: lr {lr:.3g} loss {loss.item():.4f}"
            if eval_every and (done % eval_every == 0 or done == steps):
                d = split_loss(model, dev)
                curve.append((done, d))
                msg += f" dev {d:.4f}"
            log(msg + f" ({train_s:.0f} s)")
            t = time.perf_counter()
            eval_s += t - now
    train_s += time.perf_counter() - t
    return train_s, eval_s, curve


def lecture_split(path):
    """The lectures' words and split (random.seed(42), shuffle, 80/10/10) and stoi ('.' is 0)."""
    if not Path(path).is_file():
        raise SystemExit(f"no dataset at {path} (pass --data PATH)")
    words = [w.strip() for w in open(path, "r").read().splitlines()]
    words = [w for w in words if w]
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return (words[:n1], words[n1:n2], words[n2:]), stoi


def windows(words, stoi, block_size):
    """The lectures' build_dataset: one context of `block_size` ids per character and end token."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


class BnMlp:
    """Lecture 3's MLP with a BatchNorm layer, its tensors written out by hand as the lecture
    does (b1 dropped: BatchNorm subtracts the mean)."""

    def __init__(self, vocab_size, block_size=3, n_embd=10, n_hidden=200):
        fan_in = n_embd * block_size
        self.C = torch.randn((vocab_size, n_embd))
        self.W1 = torch.randn((fan_in, n_hidden)) * (5 / 3) / fan_in ** 0.5
        self.W2 = torch.randn((n_hidden, vocab_size)) * 0.01
        self.b2 = torch.randn(vocab_size) * 0
        self.bngain = torch.ones((1, n_hidden))
        self.bnbias = torch.zeros((1, n_hidden))
        self.bnmean_running = torch.zeros((1, n_hidden))
        self.bnstd_running = torch.ones((1, n_hidden))
        self.params = [self.C, self.W1, self.W2, self.b2, self.bngain, self.bnbias]
        for p in self.params:
            p.requires_grad = True

    def parameters(self):
        return self.params

    def __call__(self, Xb):
        emb = self.C[Xb]
        embcat = emb.view(emb.shape[0], -1)
        hpreact = embcat @ self.W1
        bnmeani = hpreact.mean(0, keepdim=True)
        bnstdi = hpreact.std(0, keepdim=True)
        hpreact = self.bngain * (hpreact - bnmeani) / bnstdi + self.bnbias
        with torch.no_grad():
            self.bnmean_running = 0.999 * self.bnmean_running + 0.001 * bnmeani
            self.bnstd_running = 0.999 * self.bnstd_running + 0.001 * bnstdi
        h = torch.tanh(hpreact)
        return h @ self.W2 + self.b2


# Lecture 5's layers, in the style of torch.nn but written out.
class Linear:
    def __init__(self, fan_in, fan_out, bias=True):
        self.weight = torch.randn((fan_in, fan_out)) / fan_in ** 0.5
        self.bias = torch.zeros(fan_out) if bias else None

    def __call__(self, x):
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self):
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    def __init__(self, dim, eps=1e-5, momentum=0.1):
        self.eps, self.momentum, self.training = eps, momentum, True
        self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
        self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

    def __call__(self, x):
        if self.training:
            dim = 0 if x.ndim == 2 else (0, 1)
            xmean = x.mean(dim, keepdim=True)
            xvar = x.var(dim, keepdim=True)  # Bessel's correction
        else:
            xmean, xvar = self.running_mean, self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        self.out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * xmean
                self.running_var = (1 - m) * self.running_var + m * xvar
        return self.out

    def parameters(self):
        return [self.gamma, self.beta]


class Tanh:
    def __call__(self, x):
        self.out = torch.tanh(x)
        return self.out

    def parameters(self):
        return []


class Embedding:
    def __init__(self, num_embeddings, embedding_dim):
        self.weight = torch.randn((num_embeddings, embedding_dim))

    def __call__(self, IX):
        self.out = self.weight[IX]
        return self.out

    def parameters(self):
        return [self.weight]


class FlattenConsecutive:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        if x.shape[1] == 1:
            x = x.squeeze(1)
        self.out = x
        return self.out

    def parameters(self):
        return []


class Sequential:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return self.out

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]


def wavenet(vocab_size, n_embd=24, n_hidden=128):
    """Lecture 5's hierarchical model over 8 characters of context."""
    model = Sequential([
        Embedding(vocab_size, n_embd),
        FlattenConsecutive(2), Linear(n_embd * 2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        FlattenConsecutive(2), Linear(n_hidden * 2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        FlattenConsecutive(2), Linear(n_hidden * 2, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        Linear(n_hidden, vocab_size),
    ])
    with torch.no_grad():
        model.layers[-1].weight *= 0.1  # the last layer less confident at first
    for p in model.parameters():
        p.requires_grad = True
    return model


def build_lecture(kind, path):
    """(model, Xtr, Ytr) of a lecture's model over the train split's context windows."""
    (train_words, _, _), stoi = lecture_split(path)
    vocab_size = len(stoi)
    if kind == "bn_mlp":
        model, block_size = BnMlp(vocab_size), 3
    else:
        model, block_size = wavenet(vocab_size), 8
    Xtr, Ytr = windows(train_words, stoi, block_size)
    return model, Xtr, Ytr


def lecture_batch(Xtr, Ytr, batch_size=32):
    ix = torch.randint(0, Xtr.shape[0], (batch_size,))
    return Xtr[ix], Ytr[ix]


def lecture_train(model, Xtr, Ytr, steps):
    """`steps` of the lectures' loop: minibatch, forward, loss, backward, SGD at lr 0.1 (the
    rate of the lectures' first 100,000 / 150,000 steps)."""
    parameters = model.parameters()
    for _ in range(steps):
        Xb, Yb = lecture_batch(Xtr, Ytr)
        logits = model(Xb)
        loss = F.cross_entropy(logits, Yb)
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1
        for p in parameters:
            p.data += -lr * p.grad
    return loss


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def transformer_macs(c, batch_size=32):
    B, T, C, V, L = batch_size, c.block_size, c.n_embd, c.vocab_size, c.n_layer
    return 3 * (L * (12 * B * T * C * C + 2 * B * T * T * C) + B * T * C * V)


def step_macs(kind, c=None, B=32, V=27):
    """The multiply-adds of one step's matrix products, forward + backward (3x the forward),
    as transformer_macs counts them, for every kind: makemore's models over B x T rows
    (config c), the lectures' over B windows at their sizes. The bigram has none."""
    if kind == "transformer":
        return transformer_macs(c, B)
    if kind == "bn_mlp":
        return 3 * (B * 30 * 200 + B * 200 * V)
    if kind == "wavenet":
        # rows of fused pairs: B x 4 of 48, B x 2 of 256, B of 256; then Linear(128, V)
        return 3 * (B * 4 * 48 * 128 + B * 2 * 256 * 128 + B * 256 * 128 + B * 128 * V)
    N, T, C, C2, V = B * c.block_size, c.block_size, c.n_embd, c.n_embd2, c.vocab_size
    forward = {
        "bow": B * T * T * C + 2 * N * C * C2 + N * C * V,  # att @ x, mlp.c_fc, mlp.c_proj, lm_head
        "rnn": N * (C + C2) * C2 + N * C2 * V,  # xh_to_h at every position, lm_head
        "gru": 3 * N * (C + C2) * C2 + N * C2 * V,  # xh_to_z, xh_to_r, xh_to_hbar, lm_head
        "mlp": N * T * C * C2 + N * C2 * V,  # Linear(T * C, C2), Linear(C2, V)
        "bigram": 0,
    }[kind]
    return 3 * forward


def main_spec(a, wall):
    """The train_spec workload (see the module's documentation)."""
    spec = read_spec(a.spec, a.steps)
    mm = import_makemore(a.makemore)
    tr, dev, te = datasets(mm, a.data)
    torch.manual_seed(a.seed)  # before the model is built, as makemore
    config, model, optimizer = build_spec(mm, spec, tr)
    params = sum(p.numel() for p in model.parameters())
    log(f"train_spec {a.spec}: {json.dumps(spec)}")
    log(f"block {config.block_size}, vocab {config.vocab_size}, {len(tr)}/{len(dev)}/{len(te)} "
        f"words, {params} parameters, {torch.get_num_threads()} thread(s), seed {a.seed}")
    seconds, eval_seconds, curve = train_spec(model, optimizer, spec, tr, dev, a.eval_every)
    losses = {name: split_loss(model, ds) for name, ds in [("train", tr), ("dev", dev), ("test", te)]}
    log(f"losses: {losses}")
    out = {"workload": "train_spec", "threads": torch.get_num_threads(), "params": params,
           "torch": torch.__version__, "value": seconds, "unit": "s", "eval_seconds": eval_seconds,
           "wall": time.perf_counter() - wall, "spec": spec, "seed": a.seed, **losses}
    if curve:
        out["dev_curve"] = curve
    print(json.dumps(out))


def main():
    wall = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=[k + "_step" for k in KINDS + LECTURE_KINDS]
                    + ["train_eval", "train_spec"])
    ap.add_argument("--data", default="data/names.txt")
    ap.add_argument("--makemore", default=str(ROOT.parent / "shared/reference/makemore.py"),
                    help="Karpathy's makemore.py, whose model classes are used")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--steps", type=int, default=None, help="*_step: steps per timed block "
                    "(200); train_eval: training steps (200); train_spec: overrides the spec's")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", choices=KINDS, default="transformer", help="train_eval: the kind")
    ap.add_argument("--spec", help="train_spec: a spec file of kind transformer (specs/*.json)")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="train_spec: the dev loss every N steps (and at the last) to stderr")
    ap.add_argument("--seed", type=int, default=3407)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.workload == "train_spec":
        if not a.spec:
            ap.error("train_spec needs --spec FILE")
        return main_spec(a, wall)
    if a.steps is None:
        a.steps = 200
    kind = a.model if a.workload == "train_eval" else a.workload[:-len("_step")]
    torch.manual_seed(a.seed)
    config = None
    if kind in LECTURE_KINDS:
        # The lectures' models need no makemore.py: their own layers, their own loop.
        model, Xtr, Ytr = build_lecture(kind, a.data)
        step = lambda n: lecture_train(model, Xtr, Ytr, n)  # noqa: E731
        draw = lambda: lecture_batch(Xtr, Ytr)  # noqa: E731
        log(f"{kind}: block {Xtr.shape[1]}, {Xtr.shape[0]} train windows, {a.threads} thread(s)")
    else:
        mm = import_makemore(a.makemore)
        tr, dev, te = datasets(mm, a.data)
        config, model, optimizer = build(mm, kind, tr)
        step = lambda n: train(model, optimizer, tr, n)  # noqa: E731
        draw = lambda: batch(tr)  # noqa: E731
        log(f"{kind}: block {config.block_size}, vocab {config.vocab_size}, "
            f"{len(tr)}/{len(dev)}/{len(te)} words, {a.threads} thread(s)")
    params = sum(p.numel() for p in model.parameters())
    log(f"{kind}: {params} parameters")
    out = {"workload": a.workload, "threads": torch.get_num_threads(), "params": params,
           "torch": torch.__version__}

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
        step(20)  # warm up
        best = float("inf")
        for r in range(a.repeats):
            dt = timed(lambda: step(a.steps))
            best = min(best, dt)
            log(f"block {r + 1}/{a.repeats}: {dt / a.steps * 1e3:.3f} ms/step")
        data = min(timed(lambda: [draw() for _ in range(a.steps)]) for _ in range(a.repeats))
        loss = step(1).item()
        out.update(value=best / a.steps * 1e3, unit="ms", data_ms=data / a.steps * 1e3, loss=loss)
        out["macs"] = step_macs(kind, config)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
