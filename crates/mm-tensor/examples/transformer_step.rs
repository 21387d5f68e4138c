//! One training step of makemore's default Transformer (`makemore.py`'s `Transformer`, `Block`,
//! `CausalSelfAttention`, `NewGELU`: n_layer 4, n_head 4, n_embd 64, block_size 16, vocab 27,
//! batch 32), composed from the engine's ops, timed in a loop: a stand-alone target for
//! profilers, and our side of the "Transformer step" row of `cargo xtask bench`.
//!
//! ```text
//! cargo run --release -p mm-tensor --example transformer_step [STEPS] [--json | --ops] [--shards S] [--threads N]
//! cargo run --release -p mm-tensor --features kernel-timers --example transformer_step [STEPS] --kernels
//! ```
//!
//! The parameters carry makemore's `state_dict` names and PyTorch's layouts (an `nn.Linear`
//! weight is `[out, in]`, applied with `linear_t`); the causal-mask buffers
//! (`transformer.h.N.attn.bias`) are not needed, `causal_attention` masks by position. The
//! initialisation is N(0, 0.02) for weights and embeddings, zero biases, LayerNorm (1, 0): a
//! random model, since only the step's cost matters here. The data is synthetic, built up front
//! in makemore's `CharDataset` layout (x = `[0, w...]` padded with 0, y = `[w..., 0, -1...]`);
//! each timed step draws its batch of 32 from it (as makemore's loader and `cargo xtask bench`'s
//! MLP step do), then forward, backward and AdamW (lr 5e-4, betas (0.9, 0.99), eps 1e-8, weight
//! decay 0.01, makemore's).
//!
//! Without `--json` it first trains a copy for 300 steps on one fixed batch and prints the
//! loss (it starts near ln 27 = 3.30 and falls: a real training step). Then 20 warm-up steps
//! and the best of 3 blocks of STEPS steps (default 200): milliseconds per step, and the
//! step's multiply-adds. With `--json` it skips the check and prints one JSON object
//! (`value` in ms per step, `macs`, `params`, ...) for `cargo xtask bench`. With `--ops` it
//! prints where a step's time goes instead: the step split into batch, forward, backward and
//! AdamW, then every op of the model at its shape alone (forward and backward, best of STEPS
//! runs) times how often a step runs it. With `--kernels` (built with the `kernel-timers`
//! feature) it also prints each product's and the attention's mean time per call over the timed
//! blocks, inside the step, to set beside the same kernels alone (`examples/gemm_shapes
//! --transformer`, `--ops`): the difference is what the step's memory traffic costs them.
//!
//! `--shards S --threads N` cut each step's batch into S shards (1 to 32; where S does not
//! divide 32 the shards' sizes differ by one, as `mm_models::train`'s do) on up to N threads
//! (`mm_tensor::Shards`): the bench's all-cores row passes S = N = the number of cores.

use std::time::{Duration, Instant};

use mm_tensor::{AdamW, Grads, Graph, Optimizer, ParamId, ParamStore, Shards, Tape, TensorError, Var, init};
use ndarray::{Array2, ArrayD, ArrayView2, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Batch size.
const B: usize = 32;
/// Block size (sequence length): the longest name of names.txt (15) + 1.
const T: usize = 16;
/// Embedding width (n_embd).
const C: usize = 64;
/// Attention heads.
const H: usize = 4;
/// Layers (blocks).
const L: usize = 4;
/// Vocabulary: 26 letters and the start/end token 0.
const V: usize = 27;
/// LayerNorm's eps (`nn.LayerNorm`'s default).
const EPS: f64 = 1e-5;
/// makemore's Transformer with all its parameters, lm_head included.
const PARAMS: usize = 204_544;
/// Synthetic examples drawn from.
const EXAMPLES: usize = 4096;

/// The parameters of one `Block`.
struct BlockParams {
    ln_1: (ParamId, ParamId),
    c_attn: (ParamId, ParamId),
    attn_proj: (ParamId, ParamId),
    ln_2: (ParamId, ParamId),
    c_fc: (ParamId, ParamId),
    mlp_proj: (ParamId, ParamId),
}

/// makemore's `Transformer`, as parameter ids in the store.
struct Transformer {
    wte: ParamId,
    wpe: ParamId,
    h: Vec<BlockParams>,
    ln_f: (ParamId, ParamId),
    lm_head: ParamId,
}

impl Transformer {
    /// Registers the parameters in `model.parameters()`'s order, with their state_dict names.
    fn new(params: &mut ParamStore<f32>, rng: &mut StdRng) -> Result<Self, TensorError> {
        let mut s = Init { params, rng };
        let wte = s.normal("transformer.wte.weight", &[V, C])?;
        let wpe = s.normal("transformer.wpe.weight", &[T, C])?;
        let mut h = Vec::new();
        for i in 0..L {
            let p = format!("transformer.h.{i}");
            h.push(BlockParams {
                ln_1: s.layer_norm(&format!("{p}.ln_1"))?,
                c_attn: s.linear(&format!("{p}.attn.c_attn"), 3 * C, C)?,
                attn_proj: s.linear(&format!("{p}.attn.c_proj"), C, C)?,
                ln_2: s.layer_norm(&format!("{p}.ln_2"))?,
                c_fc: s.linear(&format!("{p}.mlp.c_fc"), 4 * C, C)?,
                mlp_proj: s.linear(&format!("{p}.mlp.c_proj"), C, 4 * C)?,
            });
        }
        let ln_f = s.layer_norm("transformer.ln_f")?;
        let lm_head = s.normal("lm_head.weight", &[V, C])?;
        Ok(Transformer { wte, wpe, h, ln_f, lm_head })
    }

    /// `Transformer.forward(idx, targets)`'s loss: `F.cross_entropy(logits, targets,
    /// ignore_index=-1)` for `idx` `[B, T]` and `targets` `[B, T]`. `clock` charges each op's
    /// time to its family when profiling (ops run as they are called).
    fn loss<'g>(
        &self,
        g: &'g Graph<'_, f32>,
        idx: ArrayView2<'_, u32>,
        targets: ArrayView2<'_, i64>,
        pos: &[u32],
        clock: &mut Clock,
    ) -> Var<'g, f32> {
        let p = |id| g.param(id);
        let linear = |x: Var<'g, f32>, (w, b): (ParamId, ParamId)| x.linear_t(p(w), Some(p(b)));
        let ln = |x: Var<'g, f32>, (w, b): (ParamId, ParamId)| x.layer_norm(p(w), p(b), EPS);
        clock.start();
        let tok_emb = p(self.wte).embedding(&idx); // [B, T, C]
        let pos_emb = p(self.wpe).embedding(pos); // [T, C], broadcast over the batch
        let mut x = tok_emb + pos_emb;
        clock.charge(Family::Embed);
        for blk in &self.h {
            // x = x + attn(ln_1(x))
            let h = ln(x, blk.ln_1);
            clock.charge(Family::LayerNorm);
            let qkv = linear(h, blk.c_attn); // [B, T, 3C]
            clock.charge(Family::CAttn);
            // q, k, v = split(n_embd, dim=2), each view(B, T, nh, hs).transpose(1, 2); causal
            // attention per head; y.transpose(1, 2).contiguous().view(B, T, C): one op, which
            // reads q, k and v in place from qkv.
            let y = qkv.causal_self_attention(H);
            clock.charge(Family::Attention);
            let y = linear(y, blk.attn_proj);
            clock.charge(Family::AttnProj);
            x = x + y;
            clock.charge(Family::Residual);
            // x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
            let h = ln(x, blk.ln_2);
            clock.charge(Family::LayerNorm);
            let h = linear(h, blk.c_fc);
            clock.charge(Family::CFc);
            let h = h.gelu();
            clock.charge(Family::Gelu);
            let h = linear(h, blk.mlp_proj);
            clock.charge(Family::MlpProj);
            x = x + h;
            clock.charge(Family::Residual);
        }
        let x = ln(x, self.ln_f);
        clock.charge(Family::LayerNorm);
        let logits = x.linear_t(p(self.lm_head), None); // [B, T, V]
        clock.charge(Family::LmHead);
        let loss = logits.cross_entropy_ignore(&targets, -1);
        clock.charge(Family::Loss);
        loss
    }
}

/// The forward's op families, for [`Clock`].
#[derive(Clone, Copy)]
enum Family {
    Embed,
    LayerNorm,
    CAttn,
    Attention,
    AttnProj,
    Residual,
    CFc,
    Gelu,
    MlpProj,
    LmHead,
    Loss,
}

impl Family {
    const NAMES: [&str; 11] = [
        "wte + wpe embeddings, add",
        "layer_norm [32,16,64] x9",
        "c_attn linear_t 64->192 x4",
        "causal_self_attention [32,16,192] x4",
        "attn.c_proj linear_t 64->64 x4",
        "residual add [32,16,64] x8",
        "mlp.c_fc linear_t 64->256 x4",
        "gelu [32,16,256] x4",
        "mlp.c_proj linear_t 256->64 x4",
        "lm_head linear_t 64->27",
        "cross_entropy_ignore [512,27]",
    ];
}

/// The forward's time per op family, when on (`--ops`); otherwise nothing.
struct Clock {
    on: bool,
    last: Instant,
    spent: [Duration; Family::NAMES.len()],
}

impl Clock {
    fn new(on: bool) -> Self {
        Clock { on, last: Instant::now(), spent: [Duration::ZERO; Family::NAMES.len()] }
    }

    fn start(&mut self) {
        if self.on {
            self.last = Instant::now();
        }
    }

    /// Charges the time since the last mark to `family`.
    fn charge(&mut self, family: Family) {
        if self.on {
            let now = Instant::now();
            self.spent[family as usize] += now - self.last;
            self.last = now;
        }
    }
}

/// Registers initialised parameters.
struct Init<'a> {
    params: &'a mut ParamStore<f32>,
    rng: &'a mut StdRng,
}

impl Init<'_> {
    /// `name` drawn from N(0, 0.02).
    fn normal(&mut self, name: &str, shape: &[usize]) -> Result<ParamId, TensorError> {
        self.params.add(name, init::randn::<f32, _>(shape, self.rng).mapv(|x| x * 0.02))
    }

    /// `nn.Linear(inp, out)`: `{name}.weight` `[out, inp]` and a zero `{name}.bias` `[out]`.
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<(ParamId, ParamId), TensorError> {
        let w = self.normal(&format!("{name}.weight"), &[out, inp])?;
        Ok((w, self.params.add(&format!("{name}.bias"), ArrayD::zeros(vec![out]))?))
    }

    /// `nn.LayerNorm(C)`: `{name}.weight` ones and `{name}.bias` zeros.
    fn layer_norm(&mut self, name: &str) -> Result<(ParamId, ParamId), TensorError> {
        let w = self.params.add(&format!("{name}.weight"), ArrayD::ones(vec![C]))?;
        Ok((w, self.params.add(&format!("{name}.bias"), ArrayD::zeros(vec![C]))?))
    }
}

/// The multiply-adds of one step (forward + backward), over the products: per layer and token
/// c_attn 3C², attn.c_proj C², mlp.c_fc 4C², mlp.c_proj 4C², the attention's `q kᵀ` and
/// `att @ v` over the whole T x T (2 T C per token), and lm_head C V; the backward is twice the
/// forward (both operands' gradients). As `bench/pytorch_zoo.py` counts them.
fn step_macs() -> usize {
    3 * (L * (12 * B * T * C * C + 2 * B * T * T * C) + B * T * C * V)
}

/// `n` synthetic words in makemore's `CharDataset` layout: x `[n, T]` = `[0, w...]` padded with
/// 0, y `[n, T]` = `[w..., 0, -1...]`. Words of 2 to 15 letters from a random bigram model (each
/// letter mostly followed by one of 3 favourites), so that there is something to learn.
fn dataset(n: usize, rng: &mut StdRng) -> (Array2<u32>, Array2<i64>) {
    let favourites: Vec<[u32; 3]> = (0..=26).map(|_| [0; 3].map(|_| rng.random_range(1..=26))).collect();
    let (mut x, mut y) = (Array2::<u32>::zeros((n, T)), Array2::<i64>::from_elem((n, T), -1));
    for i in 0..n {
        let len = rng.random_range(2..T);
        let mut prev = 0u32;
        for j in 0..len {
            let c = if rng.random_bool(0.8) {
                favourites[prev as usize][rng.random_range(0..3)]
            } else {
                rng.random_range(1..=26)
            };
            x[[i, j + 1]] = c; // x[0] stays 0, the start token; x after the word, padding 0
            y[[i, j]] = i64::from(c);
            prev = c;
        }
        y[[i, len]] = 0; // the end token, then -1
    }
    (x, y)
}

/// Copies a random batch of `B` examples into `xb`, `yb`.
fn draw(data: &(Array2<u32>, Array2<i64>), xb: &mut Array2<u32>, yb: &mut Array2<i64>, rng: &mut StdRng) {
    for r in 0..B {
        let i = rng.random_range(0..data.0.nrows());
        xb.row_mut(r).assign(&data.0.row(i));
        yb.row_mut(r).assign(&data.1.row(i));
    }
}

/// Everything a training step needs, reused from step to step.
struct Trainer {
    params: ParamStore<f32>,
    grads: Grads<f32>,
    tape: Tape<f32>,
    opt: AdamW<f32>,
    /// With more than one shard: the batch split across them (`Shards`), on their threads.
    shards: Option<Shards<f32>>,
}

impl Trainer {
    fn new(params: ParamStore<f32>, (shards, threads): (usize, usize)) -> Self {
        let mut opt = AdamW::new(5e-4);
        (opt.beta1, opt.beta2, opt.eps, opt.weight_decay) = (0.9, 0.99, 1e-8, 0.01);
        let shards = (shards > 1).then(|| Shards::new(&params, shards, threads));
        // AdamW's update on the shards' threads too (the same bits on any number).
        if let Some(shards) = &shards {
            opt.set_workers(shards.workers().clone());
        }
        Trainer { grads: Grads::new(&params), params, tape: Tape::new(), opt, shards }
    }

    /// Forward, backward, AdamW; the loss.
    fn step(
        &mut self,
        model: &Transformer,
        xb: &Array2<u32>,
        yb: &Array2<i64>,
        pos: &[u32],
    ) -> Result<f32, TensorError> {
        match &mut self.shards {
            None => {
                let g = self.tape.graph(&self.params);
                let loss = model.loss(&g, xb.view(), yb.view(), pos, &mut Clock::new(false));
                let loss = g.backward_params(loss, &mut self.grads)?;
                self.opt.step(&mut self.params, &self.grads)?;
                Ok(loss)
            }
            Some(shards) => {
                // Shard i: rows i·B/n..(i+1)·B/n (sizes differ by one where n does not divide
                // B), weighted by its targets that count.
                let (rows, n) = (xb.nrows(), shards.len());
                let loss = shards.backward(&self.params, |g, i| {
                    let r = i * rows / n..(i + 1) * rows / n;
                    let (x, y) = (xb.slice(s![r.clone(), ..]), yb.slice(s![r, ..]));
                    let counted = y.iter().filter(|&&t| t != -1).count() as f64;
                    Ok((model.loss(g, x, y, pos, &mut Clock::new(false)), counted))
                })?;
                // AdamW sums the shards' gradients as it applies them (the same bits as
                // `shards.sum_into(&self.params, &mut self.grads)` and then `opt.step`).
                self.opt.step_shards(&mut self.params, shards)?;
                Ok(loss)
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut steps = 200usize;
    let (mut json, mut ops, mut kernels) = (false, false, false);
    let (mut shards, mut threads) = (1usize, 1usize);
    let usage = "usage: transformer_step [STEPS] [--json | --ops | --kernels] [--shards S] [--threads N] (S, N: 1 to 32)";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let number = |args: &mut std::iter::Skip<std::env::Args>| {
            args.next().and_then(|n| n.parse::<usize>().ok()).filter(|&n| (1..=B).contains(&n)).ok_or(usage)
        };
        match arg.as_str() {
            "--json" => json = true,
            "--ops" => ops = true,
            "--kernels" => kernels = true,
            "--shards" => shards = number(&mut args)?,
            "--threads" => threads = number(&mut args)?,
            s => steps = s.parse().map_err(|_| format!("{usage}, not {s:?}"))?,
        }
    }
    if kernels && !cfg!(feature = "kernel-timers") {
        return Err("--kernels needs the timers: cargo run --release -p mm-tensor --features kernel-timers --example transformer_step -- --kernels".into());
    }
    // Threads run shards: more threads than shards would idle.
    let shards = shards.max(threads);
    let steps = steps.max(1);
    let mut rng = StdRng::seed_from_u64(3407);
    let mut params = ParamStore::new();
    let model = Transformer::new(&mut params, &mut rng)?;
    // makemore prints "number of parameters: 0.20M" over `transformer.parameters()`, which leaves
    // out lm_head (64 x 27 = 1,728): 202,816. All of them, as `model #params` counts: 204,544.
    let lm_head = params.shape(model.lm_head).numel();
    assert_eq!(
        params.numel(),
        PARAMS,
        "makemore's default Transformer has {PARAMS} parameters (202,816 + lm_head's 1,728); this one has {}",
        params.numel()
    );
    let data = dataset(EXAMPLES, &mut rng);
    let pos: Vec<u32> = (0..T as u32).collect();
    let (mut xb, mut yb) = (Array2::<u32>::zeros((B, T)), Array2::<i64>::zeros((B, T)));
    let macs = step_macs();
    if ops {
        return profile(model, params, &data, steps);
    }

    if !json {
        println!(
            "makemore's Transformer: n_layer {L}, n_head {H}, n_embd {C}, block_size {T}, vocab {V}, batch {B}"
        );
        println!(
            "parameters: {} ({} without lm_head, as makemore's \"number of parameters\" line)",
            params.numel(),
            params.numel() - lm_head
        );
        // The check: a copy trained on one fixed batch; its loss must start near ln 27 and fall.
        let mut check = Trainer::new(params.clone(), (shards, threads));
        draw(&data, &mut xb, &mut yb, &mut rng);
        let mut first = f32::NAN;
        let mut last = f32::NAN;
        print!("loss on one fixed batch:");
        for i in 0..=300 {
            last = check.step(&model, &xb, &yb, &pos)?;
            if i == 0 {
                first = last;
            }
            if i % 50 == 0 {
                print!(" {i}: {last:.4}");
            }
        }
        println!();
        let ln27 = (V as f32).ln();
        assert!((first - ln27).abs() < 0.1, "the first loss {first} is not near ln 27 = {ln27}");
        assert!(
            last < first - 0.5,
            "the loss did not fall over 300 steps on a fixed batch: {first} -> {last}"
        );
    }

    let mut trainer = Trainer::new(params, (shards, threads));
    let mut loss = 0.0;
    for _ in 0..20 {
        draw(&data, &mut xb, &mut yb, &mut rng);
        loss = trainer.step(&model, &xb, &yb, &pos)?;
    }
    // The kernel timers count the timed blocks only.
    #[cfg(feature = "kernel-timers")]
    mm_tensor::timers::take();
    let mut blocks = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..steps {
            draw(&data, &mut xb, &mut yb, &mut rng);
            loss = trainer.step(&model, &xb, &yb, &pos)?;
        }
        blocks.push(start.elapsed().as_secs_f64() * 1e3 / steps as f64);
    }
    let best = blocks.iter().copied().fold(f64::INFINITY, f64::min);
    let gmacs = macs as f64 / (best * 1e-3) / 1e9;
    if json {
        let list = blocks.iter().map(|b| format!("{b:.4}")).collect::<Vec<_>>().join(", ");
        println!(
            "{{\"workload\": \"transformer_step\", \"value\": {best:.4}, \"unit\": \"ms\", \"blocks\": [{list}], \
             \"steps\": {steps}, \"macs\": {macs}, \"params\": {}, \"loss\": {loss:.4}, \"shards\": {shards}, \
             \"threads\": {threads}}}",
            trainer.params.numel()
        );
    } else {
        let list = blocks.iter().map(|b| format!("{b:.3}")).collect::<Vec<_>>().join(", ");
        println!("multiply-adds per step (forward + backward products): {macs} ({:.3} G)", macs as f64 / 1e9);
        println!(
            "best of 3 blocks of {steps} steps: {best:.3} ms/step ({list}), {gmacs:.1} GMAC/s; loss {loss:.4}"
        );
    }
    #[cfg(feature = "kernel-timers")]
    if kernels {
        println!("\nthe kernels inside the step, mean over the timed blocks:");
        println!("  {:<20} {:>16} {:>9} {:>12} {:>8}", "kernel", "sizes", "calls", "us/call", "GMAC/s");
        for ((name, [a, b, c]), calls, ns) in mm_tensor::timers::take() {
            let per_call = ns as f64 / calls as f64;
            // A product's sizes are m × k × n; attention's b, t, c (no rate).
            let rate = name.starts_with("gemm").then(|| format!("{:.1}", (a * b * c) as f64 / per_call));
            println!(
                "  {name:<20} {:>16} {calls:>9} {:>12.2} {:>8}",
                format!("{a}x{b}x{c}"),
                per_call / 1e3,
                rate.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `--ops`: where a step's time goes. First the real step split into its phases (the best of
/// `reps` steps each); then each op of the model at its shape, alone on a tape whose inputs are
/// parameters: its forward (the op's call) and its backward (`backward_from` the op's output,
/// less the cost of seeding the upstream gradient), the best of `reps` runs, times its count per
/// step.
fn profile(
    model: Transformer,
    params: ParamStore<f32>,
    data: &(Array2<u32>, Array2<i64>),
    reps: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let reps = reps.max(1);
    let mut rng = StdRng::seed_from_u64(1);
    let (mut xb, mut yb) = (Array2::<u32>::zeros((B, T)), Array2::<i64>::zeros((B, T)));
    let pos: Vec<u32> = (0..T as u32).collect();
    let mut tr = Trainer::new(params, (1, 1));
    let mut best = [Duration::MAX; 5];
    let mut families = [Duration::MAX; Family::NAMES.len()];
    for i in 0..reps + 20 {
        let t0 = Instant::now();
        draw(data, &mut xb, &mut yb, &mut rng);
        let t1 = Instant::now();
        let g = tr.tape.graph(&tr.params);
        let mut clock = Clock::new(true);
        let loss = model.loss(&g, xb.view(), yb.view(), &pos, &mut clock);
        loss.item()?;
        let t2 = Instant::now();
        g.backward_params(loss, &mut tr.grads)?;
        let t3 = Instant::now();
        tr.opt.step(&mut tr.params, &tr.grads)?;
        let t4 = Instant::now();
        if i >= 20 {
            for (b, d) in best.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]) {
                *b = (*b).min(d);
            }
            for (b, &d) in families.iter_mut().zip(&clock.spent) {
                *b = (*b).min(d);
            }
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("one step, best of {reps} (each phase's own best):");
    for (name, d) in ["draw the batch", "forward (graph + loss)", "backward", "AdamW (204,544)", "whole step"]
        .iter()
        .zip(best)
    {
        println!("  {name:<26} {:>9.1} us", us(d));
    }
    println!("\nthe forward in the model, per op family (each family's best step):");
    for (name, &d) in Family::NAMES.iter().zip(&families) {
        println!("  {name:<44} {:>9.1} us", us(d));
    }
    let total: Duration = families.iter().sum();
    println!("  {:<44} {:>9.1} us", "sum", us(total));

    // Each op alone, with its count per step.
    let (ids, targets) = (xb.clone(), yb.clone());
    let bt = vec![B, T, C];
    let table = [
        row("wte embedding [32,16] of [27,64]", 1, &[&[V, C]], move |v| v[0].embedding(&ids)),
        row("wpe embedding [16] of [16,64]", 1, &[&[T, C]], |v| v[0].embedding(&[0u32; T])),
        row("add [32,16,64] + [16,64]", 1, &[&bt, &[T, C]], |v| v[0] + v[1]),
        row("layer_norm [32,16,64]", 2 * L + 1, &[&bt, &[C], &[C]], |v| v[0].layer_norm(v[1], v[2], EPS)),
        linear_row(3 * C, C, L),
        row("causal_self_attention [32,16,192], 4 heads", L, &[&[B, T, 3 * C]], |v| {
            v[0].causal_self_attention(H)
        }),
        linear_row(C, C, L),
        row("add [32,16,64] + [32,16,64] (residual)", 2 * L, &[&bt, &bt], |v| v[0] + v[1]),
        linear_row(4 * C, C, L),
        row("gelu [32,16,256]", L, &[&[B, T, 4 * C]], |v| v[0].gelu()),
        linear_row(C, 4 * C, L),
        linear_row(V, C, 1),
        row("cross_entropy_ignore [32,16,27]", 1, &[&[B, T, V]], move |v| {
            v[0].cross_entropy_ignore(&targets, -1)
        }),
    ];
    println!("\neach op alone, best of {reps} runs (backward less seeding its upstream gradient):");
    println!(
        "  {:<44} {:>5} {:>9} {:>9} {:>11} {:>10}",
        "op [shape]", "count", "fwd us", "bwd us", "x count us", "GMAC/s"
    );
    let (mut fwd_sum, mut bwd_sum) = (0.0, 0.0);
    for r in &table {
        let (fwd, bwd, out) = time_op(&r.shapes, reps, r.f.as_ref())?;
        let seed = time_op(std::slice::from_ref(&out), reps, &|v: &[Var<'_, f32>]| v[0])?.1;
        let bwd = (bwd - seed).max(0.0);
        let macs = r.macs.map_or(String::new(), |m| format!("{:.1}", 3.0 * m / (fwd + bwd) / 1e3));
        let (name, count) = (&r.name, r.count as f64);
        println!(
            "  {name:<44} {:>5} {fwd:>9.1} {bwd:>9.1} {:>11.1} {macs:>10}",
            r.count,
            (fwd + bwd) * count
        );
        fwd_sum += fwd * count;
        bwd_sum += bwd * count;
    }
    println!(
        "  {:<44} {:>5} {fwd_sum:>9.1} {bwd_sum:>9.1} {:>11.1}",
        "sum over a step",
        "",
        fwd_sum + bwd_sum
    );
    Ok(())
}

/// An op of [`profile`]'s table, on its inputs.
type OpFn = dyn for<'g> Fn(&[Var<'g, f32>]) -> Var<'g, f32>;

/// A row of [`profile`]'s table: an op, its inputs' shapes and how many times a step runs it.
struct OpRow {
    name: String,
    count: usize,
    shapes: Vec<Vec<usize>>,
    f: Box<OpFn>,
    /// The forward's multiply-adds, for a product.
    macs: Option<f64>,
}

/// An [`OpRow`] (the bound gives the closure its higher-ranked signature).
fn row<F>(name: &str, count: usize, shapes: &[&[usize]], f: F) -> OpRow
where
    F: for<'g> Fn(&[Var<'g, f32>]) -> Var<'g, f32> + 'static,
{
    OpRow {
        name: name.into(),
        count,
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        f: Box::new(f),
        macs: None,
    }
}

/// The row of `linear_t` from `inp` to `out` features over the 512 positions: with a bias,
/// except lm_head's (`out` = V).
fn linear_row(out: usize, inp: usize, count: usize) -> OpRow {
    let x = [B, T, inp];
    let mut r = if out == V {
        row(&format!("linear_t [512,{inp}] x [{out},{inp}]"), count, &[&x, &[out, inp]], |v| {
            v[0].linear_t(v[1], None)
        })
    } else {
        row(&format!("linear_t [512,{inp}] x [{out},{inp}] + b"), count, &[&x, &[out, inp], &[out]], |v| {
            v[0].linear_t(v[1], Some(v[2]))
        })
    };
    r.macs = Some((B * T * inp * out) as f64);
    r
}

/// `f` on parameters of `shapes` (random values): the best forward and backward of `reps` runs
/// in microseconds, and the output's shape.
fn time_op(shapes: &[Vec<usize>], reps: usize, f: &OpFn) -> Result<(f64, f64, Vec<usize>), TensorError> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut params = ParamStore::new();
    let ids = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| params.add(&format!("in{i}"), init::randn::<f32, _>(s, &mut rng).mapv(|x| x * 0.5)))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut tape, mut grads) = (Tape::new(), Grads::new(&params));
    let (mut fwd, mut bwd) = (Duration::MAX, Duration::MAX);
    let mut out = Vec::new();
    let mut upstream = ArrayD::<f32>::zeros(vec![0]);
    for i in 0..reps + 5 {
        let g = tape.graph(&params);
        let vars: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
        let t0 = Instant::now();
        let y = f(&vars);
        let t1 = Instant::now();
        g.check()?;
        if i == 0 {
            out = y.shape().dims().to_vec();
            upstream = init::randn::<f32, _>(&out, &mut rng);
        }
        let t2 = Instant::now();
        g.backward_from(y, upstream.view(), &mut grads)?;
        let t3 = Instant::now();
        if i >= 5 {
            fwd = fwd.min(t1 - t0);
            bwd = bwd.min(t3 - t2);
        }
    }
    Ok((fwd.as_secs_f64() * 1e6, bwd.as_secs_f64() * 1e6, out))
}
