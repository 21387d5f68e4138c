//! makemore.py's models at makemore's default sizes: their parameter counts and names, the
//! shapes of their logits, their errors, and a few AdamW steps on one batch lowering the loss.

use mm_models::zoo::{BoW, Gru, MlpMakemore, ModelConfig, Rnn, Transformer, ZooModel};
use mm_tensor::{AdamW, Grads, Optimizer, Tape};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn fresh<M: ZooModel<f32>>() -> M {
    M::new(ModelConfig::default(), &mut StdRng::seed_from_u64(3407)).unwrap()
}

fn names<M: ZooModel<f32>>(m: &M) -> Vec<String> {
    m.params().ids().map(|id| m.params().name(id).to_string()).collect()
}

#[test]
fn default_models_have_makemores_parameter_counts() {
    // makemore's `sum(p.numel() for p in model.parameters())` at its defaults on names.txt.
    assert_eq!(fresh::<Transformer>().num_params(), 204_544);
    assert_eq!(fresh::<BoW>().num_params(), 12_827);
    assert_eq!(fresh::<Rnn>().num_params(), 11_803);
    assert_eq!(fresh::<Gru>().num_params(), 28_315);
    assert_eq!(fresh::<MlpMakemore>().num_params(), 69_147);
}

#[test]
fn parameters_carry_makemores_state_dict_names_in_named_parameters_order() {
    let t = names(&fresh::<Transformer>());
    assert_eq!(t.len(), 2 + 4 * 12 + 2 + 1);
    assert_eq!(
        &t[..6],
        [
            "transformer.wte.weight",
            "transformer.wpe.weight",
            "transformer.h.0.ln_1.weight",
            "transformer.h.0.ln_1.bias",
            "transformer.h.0.attn.c_attn.weight",
            "transformer.h.0.attn.c_attn.bias",
        ]
    );
    assert_eq!(&t[t.len() - 3..], ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]);
    let m = fresh::<Transformer>();
    let c_attn = m.params().id("transformer.h.3.attn.c_attn.weight").unwrap();
    assert_eq!(m.params().shape(c_attn).dims(), [192, 64]);
    assert_eq!(
        names(&fresh::<BoW>()),
        [
            "wte.weight",
            "wpe.weight",
            "context_block.mlp.c_fc.weight",
            "context_block.mlp.c_fc.bias",
            "context_block.mlp.c_proj.weight",
            "context_block.mlp.c_proj.bias",
            "lm_head.weight",
            "lm_head.bias",
        ]
    );
    assert_eq!(
        names(&fresh::<Rnn>()),
        ["start", "wte.weight", "cell.xh_to_h.weight", "cell.xh_to_h.bias", "lm_head.weight", "lm_head.bias"]
    );
    assert_eq!(
        names(&fresh::<Gru>())[2..8],
        [
            "cell.xh_to_z.weight",
            "cell.xh_to_z.bias",
            "cell.xh_to_r.weight",
            "cell.xh_to_r.bias",
            "cell.xh_to_hbar.weight",
            "cell.xh_to_hbar.bias",
        ]
    );
    assert_eq!(
        names(&fresh::<MlpMakemore>()),
        ["wte.weight", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"]
    );
}

#[test]
fn kinds_are_makemores_type_names() {
    let kinds = [
        fresh::<Transformer>().kind(),
        fresh::<BoW>().kind(),
        fresh::<Rnn>().kind(),
        fresh::<Gru>().kind(),
        fresh::<MlpMakemore>().kind(),
    ];
    assert_eq!(kinds, ["transformer", "bow", "rnn", "gru", "mlp"]);
}

/// A batch of 4 words in makemore's `CharDataset` layout (x `[0, w...]` padded with 0, y
/// `[w..., 0, -1...]`), block_size 16.
fn batch() -> (Array2<u32>, Array2<i64>) {
    let words: [&[u32]; 4] =
        [&[5, 13, 13, 1], &[15, 12, 9, 22, 9, 1], &[1, 22, 1], &[9, 19, 1, 2, 5, 12, 12, 1]];
    let (mut x, mut y) = (Array2::zeros((4, 16)), Array2::from_elem((4, 16), -1));
    for (i, w) in words.iter().enumerate() {
        for (j, &c) in w.iter().enumerate() {
            x[[i, j + 1]] = c;
            y[[i, j]] = i64::from(c);
        }
        y[[i, w.len()]] = 0;
    }
    (x, y)
}

/// The loss before and after `steps` AdamW steps (makemore's settings) on one batch; the
/// logits' shape.
fn train<M: ZooModel<f32>>(steps: usize) -> (f32, f32, Vec<usize>) {
    let mut model = fresh::<M>();
    let (x, y) = batch();
    let (mut tape, mut grads) = (Tape::new(), Grads::new(model.params()));
    let mut opt = AdamW::new(5e-4);
    (opt.beta1, opt.beta2, opt.eps, opt.weight_decay) = (0.9, 0.99, 1e-8, 0.01);
    let mut losses = Vec::new();
    for _ in 0..=steps {
        let g = tape.graph(model.params());
        let loss = model.loss(&g, x.view(), y.view());
        losses.push(g.backward(loss, &mut grads).unwrap());
        opt.step(model.params_mut(), &grads).unwrap();
    }
    let g = tape.no_grad(model.params());
    let shape = model.forward(&g, x.view()).shape().dims().to_vec();
    (losses[0], losses[steps], shape)
}

fn learns<M: ZooModel<f32>>(name: &str) {
    let (first, last, shape) = train::<M>(30);
    assert_eq!(shape, [4, 16, 27], "{name}: logits [B, T, V]");
    // A fresh model predicts about uniformly: near ln 27 = 3.30.
    assert!((2.5..4.5).contains(&first), "{name}: first loss {first}");
    assert!(last < first - 0.05, "{name}: 30 AdamW steps on one batch took the loss from {first} to {last}");
}

#[test]
fn a_few_adamw_steps_on_one_batch_lower_the_transformers_loss() {
    learns::<Transformer>("transformer");
}

#[test]
fn a_few_adamw_steps_on_one_batch_lower_the_bows_loss() {
    learns::<BoW>("bow");
}

#[test]
fn a_few_adamw_steps_on_one_batch_lower_the_rnns_loss() {
    learns::<Rnn>("rnn");
}

#[test]
fn a_few_adamw_steps_on_one_batch_lower_the_grus_loss() {
    learns::<Gru>("gru");
}

#[test]
fn a_few_adamw_steps_on_one_batch_lower_the_mlps_loss() {
    learns::<MlpMakemore>("mlp");
}

#[test]
fn the_mlps_context_is_makemores_rolled_ids() {
    let m = MlpMakemore::<f32>::new(
        ModelConfig { block_size: 3, ..ModelConfig::default() },
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    let idx = ndarray::arr2(&[[0u32, 5, 13, 13]]);
    let ctx = m.context(idx.view());
    // Position t sees idx[t], idx[t-1], idx[t-2]; 27 (the blank) before the start.
    let want = [[0, 27, 27], [5, 0, 27], [13, 5, 0], [13, 13, 5]];
    assert_eq!(ctx.index_axis(ndarray::Axis(0), 0), ndarray::arr2(&want));
}

#[test]
fn a_sequence_longer_than_block_size_is_an_error_for_position_embeddings() {
    let x = Array2::<u32>::zeros((2, 17));
    let mut tape = Tape::new();
    let m = fresh::<Transformer>();
    let g = tape.no_grad(m.params());
    let e = m.forward(&g, x.view()).item().unwrap_err().to_string();
    assert!(e.contains("narrow"), "{e}");
    let m = fresh::<BoW>();
    let g = tape.no_grad(m.params());
    assert!(m.forward(&g, x.view()).item().is_err());
}

#[test]
fn bad_sizes_are_configuration_errors() {
    let c = ModelConfig { n_head: 3, ..ModelConfig::default() };
    let e = Transformer::<f32>::new(c, &mut StdRng::seed_from_u64(0)).unwrap_err();
    assert_eq!(e.to_string(), "invalid configuration: transformer: n_embd 64 is not a multiple of n_head 3");
    let c = ModelConfig { n_embd2: 0, ..ModelConfig::default() };
    assert!(Gru::<f32>::new(c, &mut StdRng::seed_from_u64(0)).is_err());
    // The Transformer does not use n_embd2.
    assert!(Transformer::<f32>::new(c, &mut StdRng::seed_from_u64(0)).is_ok());
}

#[test]
fn fresh_parameters_start_as_pytorchs_modules_do() {
    let m = fresh::<Gru>();
    let p = m.params();
    let get = |name: &str| p.get(p.id(name).unwrap()).to_owned();
    // The learned start state is zeros; nn.Embedding is N(0, 1).
    assert!(get("start").iter().all(|&v| v == 0.0));
    let wte = get("wte.weight");
    let (mean, sd) = (wte.mean().unwrap(), wte.std(0.0));
    assert!(mean.abs() < 0.1 && (sd - 1.0).abs() < 0.1, "wte: mean {mean}, sd {sd}");
    // nn.Linear: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = n_embd + n_embd2.
    let bound = 1.0 / 128f32.sqrt();
    for name in ["cell.xh_to_z.weight", "cell.xh_to_z.bias"] {
        let w = get(name);
        let max = w.iter().fold(0f32, |a, &v| a.max(v.abs()));
        assert!(max <= bound && max > 0.9 * bound, "{name}: max |w| {max}, bound {bound}");
    }
    // nn.LayerNorm: weight ones, bias zeros.
    let t = fresh::<Transformer>();
    let ln = |name: &str| t.params().get(t.params().id(name).unwrap()).to_owned();
    assert!(ln("transformer.ln_f.weight").iter().all(|&v| v == 1.0));
    assert!(ln("transformer.h.2.ln_1.bias").iter().all(|&v| v == 0.0));
}

#[test]
fn both_precisions_draw_the_same_fresh_parameters() {
    let (a, b): (Rnn<f32>, Rnn<f64>) =
        (fresh(), Rnn::new(ModelConfig::default(), &mut StdRng::seed_from_u64(3407)).unwrap());
    for id in a.params().ids() {
        let (x, y) = (a.params().get(id), b.params().get(id));
        assert!(x.iter().zip(y.iter()).all(|(&x, &y)| x == y as f32), "{}", a.params().name(id));
    }
}
