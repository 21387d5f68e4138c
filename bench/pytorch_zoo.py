"""PyTorch's side of the zoo's training-step bench: makemore.py's own model classes (imported from
the reference copy, never copied here), trained as makemore trains them, and the lectures'
BatchNorm MLP (part 3) and WaveNet (part 5), written here as the lectures write them, trained as
the lectures train them; timed like `bench/pytorch_bench.py`.

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=[k + "_step" for k in KINDS + LECTURE_KINDS] + ["train_eval"])
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
