"""PyTorch's side of `cargo xtask bench`: each workload of makemore parts 1-2, written as the
lectures write it (PyTorch 2.x, one thread), timed the same way as the Rust side.

    python3 bench/pytorch_bench.py WORKLOAD --data data/names.txt [--repeats N]

prints one JSON object: {"workload": ..., "value": ..., "unit": ..., ...}. The workloads:

  mlp_step          one training step of the lecture's MLP (block 3, n_embd 10, n_hidden 200,
                    batch 32): minibatch, forward, backward, SGD update. Microseconds, the best of
                    `repeats` blocks of 2,000 steps.
  train_split_loss  the loss over the whole train split (182,625 contexts), no gradients.
                    Milliseconds, best of `repeats`.
  bigram_counts     the 27x27 bigram counts of names.txt, from the list of words: ids by a Python
                    loop, counted by torch.bincount (faster than the lecture's N[ix1, ix2] += 1).
                    Milliseconds, best of `repeats`.
  bigram_nn_step    one full-batch step of the bigram net (228,146 examples), as the lecture:
                    one_hot, @ W, exp, normalise, NLL + 0.01 * mean(W**2), backward, update.
                    Milliseconds, best of `repeats`.
  sample_10k        10,000 names from a trained MLP (--checkpoint, a makemore-rs safetensors
                    file), batched across names (torch.multinomial). Milliseconds, best of
                    `repeats`.
  full_run          the lecture's whole MLP training: load names.txt, build the split, 200,000 steps
                    (lr 0.1, then 0.01 from step 100,000), the loss on train and dev, 20 samples.
                    Seconds (from the start of this script, imports included), and the peak
                    resident memory in MB.
"""

import argparse
import json
import random
import resource
import time

T0 = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)


def load(path):
    words = open(path, "r").read().splitlines()
    chars = sorted(list(set("".join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    return words, stoi, itos


def build_dataset(words, stoi, block_size=3):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


def bigrams(words, stoi):
    """Every (previous, next) character pair of `.` + word + `.`, as id tensors (the lecture's
    loop)."""
    xs, ys = [], []
    for w in words:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    return torch.tensor(xs), torch.tensor(ys)


def splits(words, stoi):
    words = list(words)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return (build_dataset(words[:n1], stoi), build_dataset(words[n1:n2], stoi),
            build_dataset(words[n2:], stoi))


def mlp(vocab_size=27, n_embd=10, n_hidden=200, block_size=3):
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((block_size * n_embd, n_hidden), generator=g)
    b1 = torch.randn(n_hidden, generator=g)
    W2 = torch.randn((n_hidden, vocab_size), generator=g)
    b2 = torch.randn(vocab_size, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    return parameters


def mlp_loss(parameters, X, Y):
    C, W1, b1, W2, b2 = parameters
    emb = C[X]
    h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)
    logits = h @ W2 + b2
    return F.cross_entropy(logits, Y)


def train(parameters, Xtr, Ytr, steps, g=None):
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        loss = mlp_loss(parameters, Xtr[ix], Ytr[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
    return loss


def sample(parameters, n, block_size=3, seed=42):
    C, W1, b1, W2, b2 = parameters
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        context = torch.zeros((n, block_size), dtype=torch.long)
        out = torch.zeros((n, 0), dtype=torch.long)
        alive = torch.ones(n, dtype=torch.bool)
        for _ in range(64):
            emb = C[context]
            h = torch.tanh(emb.view(n, -1) @ W1 + b1)
            probs = F.softmax(h @ W2 + b2, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).squeeze(1)
            ix = torch.where(alive, ix, torch.zeros_like(ix))
            out = torch.cat([out, ix[:, None]], dim=1)
            alive &= ix != 0
            context = torch.cat([context[:, 1:], ix[:, None]], dim=1)
            if not alive.any():
                break
    return out


def load_checkpoint(path):
    """The MLP's tensors from a safetensors file (read directly: 8-byte header size, JSON header,
    little-endian float32 data), without the safetensors package."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    tensors = {}
    for name in ["C", "W1", "b1", "W2", "b2"]:
        info = header[name]
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32).reshape(info["shape"])
        tensors[name] = t
    return [tensors[k] for k in ["C", "W1", "b1", "W2", "b2"]]


def best_of(repeats, f):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--data", default="data/names.txt")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", help="sample_10k: the trained MLP (safetensors)")
    a = ap.parse_args()
    words, stoi, itos = load(a.data)
    out = {"workload": a.workload, "torch": torch.__version__, "threads": torch.get_num_threads()}

    if a.workload == "mlp_step":
        (Xtr, Ytr), _, _ = splits(words, stoi)
        parameters = mlp()
        train(parameters, Xtr, Ytr, 500)  # warm up
        steps = 2000
        out.update(value=best_of(a.repeats, lambda: train(parameters, Xtr, Ytr, steps)) / steps * 1e6,
                   unit="us")
    elif a.workload == "train_split_loss":
        (Xtr, Ytr), _, _ = splits(words, stoi)
        parameters = mlp()

        def loss():
            with torch.no_grad():
                return mlp_loss(parameters, Xtr, Ytr).item()
        out.update(value=best_of(a.repeats, loss) * 1e3, unit="ms", loss=loss())
    elif a.workload == "bigram_counts":
        def counts():
            xs, ys = bigrams(words, stoi)
            return torch.bincount(xs * 27 + ys, minlength=27 * 27).view(27, 27)
        N = counts()
        out.update(value=best_of(a.repeats, counts) * 1e3, unit="ms", total=int(N.sum()))
    elif a.workload == "bigram_nn_step":
        xs, ys = bigrams(words, stoi)
        num = xs.nelement()
        g = torch.Generator().manual_seed(2147483647)
        W = torch.randn((27, 27), generator=g, requires_grad=True)

        def step():
            xenc = F.one_hot(xs, num_classes=27).float()
            logits = xenc @ W
            counts = logits.exp()
            probs = counts / counts.sum(1, keepdims=True)
            loss = -probs[torch.arange(num), ys].log().mean() + 0.01 * (W ** 2).mean()
            W.grad = None
            loss.backward()
            W.data += -50 * W.grad
            return loss
        step()
        out.update(value=best_of(a.repeats, step) * 1e3, unit="ms", examples=num)
    elif a.workload == "sample_10k":
        parameters = load_checkpoint(a.checkpoint) if a.checkpoint else mlp()
        sample(parameters, 100)
        out.update(value=best_of(a.repeats, lambda: sample(parameters, 10000)) * 1e3, unit="ms")
    elif a.workload == "full_run":
        (Xtr, Ytr), (Xdev, Ydev), _ = splits(words, stoi)
        parameters = mlp()
        g = torch.Generator().manual_seed(2147483647)
        train(parameters, Xtr, Ytr, 200000, g)
        with torch.no_grad():
            tr = mlp_loss(parameters, Xtr, Ytr).item()
            dev = mlp_loss(parameters, Xdev, Ydev).item()
        sample(parameters, 20)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.update(value=time.perf_counter() - T0, unit="s", peak_rss_mb=rss_mb, train=tr, dev=dev)
    else:
        raise SystemExit(f"unknown workload {a.workload!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
