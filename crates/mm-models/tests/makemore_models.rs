//! makemore.py's models as [`Model`]s: every kind trains, evaluates, samples, saves and loads
//! through the same loop and files as the lectures' models; the loss is measured per predicted
//! character for both ways of reading words; and a run continued from a save ends bit for bit
//! where one run ends.

mod common;

use std::sync::atomic::AtomicBool;

use mm_data::{Examples, Layout, Vocab};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, load, save};
use mm_models::zoo::{Kind, Makemore, ModelConfig};
use mm_models::{
    BigramNet, Model, ModelError, Progress, SampleConfig, Schedule, TrainConfig, evaluate, sample, train,
    train_from,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const WORDS: [&str; 16] = [
    "emma",
    "olivia",
    "ava",
    "isabella",
    "sophia",
    "charlotte",
    "mia",
    "amelia",
    "harper",
    "evelyn",
    "abigail",
    "emily",
    "elizabeth",
    "mila",
    "ella",
    "avery",
];

fn vocab() -> Vocab {
    Vocab::from_words(&WORDS)
}

/// Small sizes, so that every kind trains in a blink: block_size the longest word + 1.
fn small(vocab: &Vocab) -> ModelConfig {
    let longest = WORDS.iter().map(|w| w.len()).max().unwrap();
    ModelConfig {
        block_size: longest + 1,
        vocab_size: vocab.len(),
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        n_embd2: 12,
    }
}

fn fresh(kind: Kind, seed: u64) -> Makemore {
    let v = vocab();
    Makemore::new(kind, small(&v), &v, &mut StdRng::seed_from_u64(seed)).unwrap()
}

fn cfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: Some(8),
        schedule: Schedule::Constant(1e-2),
        eval_every: 10,
        seed: 5,
        ..TrainConfig::makemore()
    }
}

fn bits(m: &dyn Model) -> Vec<u32> {
    let p = m.params();
    p.ids().flat_map(|id| p.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

fn examples(m: &Makemore) -> Examples {
    Examples::new(&WORDS, m.vocab(), m.layout(), m.block_size()).unwrap()
}

#[test]
fn every_kind_trains_samples_saves_and_loads_through_the_common_loop() {
    let dir = std::env::temp_dir().join(format!("mm-makemore-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let no = AtomicBool::new(false);
    for kind in Kind::ALL {
        let mut m = fresh(kind, 1);
        assert_eq!((m.kind(), m.layout(), m.model_kind()), (kind.name(), Layout::Words, kind));
        assert_eq!(m.num_params() as u128, kind.num_params(&small(m.vocab())), "{kind:?}");
        let ex = examples(&m);
        let before = evaluate(&m, &ex).unwrap();
        let report = train(&mut m, &ex, Some(&ex), &cfg(60), &no, |_| {}).unwrap();
        let after = evaluate(&m, &ex).unwrap();
        assert!(after < before - 0.2, "{kind:?}: the loss went from {before} to {after}");
        assert!(report.best.is_some(), "{kind:?}: evaluated on dev");
        let names = sample(&m, &SampleConfig { n: 12, max_len: 30, ..SampleConfig::default() }).unwrap();
        assert_eq!(names.len(), 12);
        assert!(names.iter().all(|n| n.chars().all(|c| m.vocab().id(c).is_ok())), "{names:?}");
        let prefixed = sample(&m, &SampleConfig { n: 4, prefix: "em".into(), ..SampleConfig::default() });
        assert!(prefixed.unwrap().iter().all(|n| n.starts_with("em")));

        // Saved and loaded: the same parameters under makemore's names, the same loss and
        // samples, and AdamW's moments.
        let path = dir.join(format!("{}.safetensors", kind.name()));
        let meta = CheckpointMeta { step: 60, adamw: report.progress.adamw.clone(), ..Default::default() };
        save(&path, &AnyModel::Makemore(m.clone()), &meta).unwrap();
        let (AnyModel::Makemore(back), back_meta) = load(&path).unwrap() else { panic!("{kind:?}") };
        assert_eq!((back.model_kind(), back.config()), (kind, m.config()));
        assert_eq!(bits(&back), bits(&m), "{kind:?}");
        assert_eq!(evaluate(&back, &ex).unwrap().to_bits(), after.to_bits());
        assert_eq!(
            sample(&back, &SampleConfig::default()).unwrap(),
            sample(&m, &SampleConfig::default()).unwrap()
        );
        assert_eq!(back_meta.adamw, report.progress.adamw);
        let names: Vec<_> = back.params().ids().map(|id| back.params().name(id).to_string()).collect();
        let first = match kind {
            Kind::Transformer => "transformer.wte.weight",
            Kind::Bow | Kind::Mlp => "wte.weight",
            Kind::Rnn | Kind::Gru => "start",
            Kind::Bigram => "logits",
        };
        assert_eq!(names[0], first, "{kind:?}: makemore's state_dict() names");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_loss_is_per_character_whichever_way_a_model_reads_words() {
    // makemore's Bigram over whole words and the lectures' bigram net over windows, with the same
    // table of logits, predict the same characters from the same previous ones: their losses
    // over a split agree, although one averages over words' positions and the other over
    // windows.
    let v = vocab();
    let mut words = fresh(Kind::Bigram, 0);
    let net = BigramNet::new(&v, 0.0, &mut StdRng::seed_from_u64(9)).unwrap();
    let table: Vec<f32> = net.params().data(net.params().id("W").unwrap()).to_vec();
    let logits = words.params().id("logits").unwrap();
    words.params_mut().data_mut(logits).copy_from_slice(&table);
    let by_words = evaluate(&words, &Examples::words(&WORDS, &v, 10).unwrap()).unwrap();
    let by_windows = evaluate(&net, &Examples::windows(&WORDS, &v, 1).unwrap()).unwrap();
    assert!((by_words - by_windows).abs() < 1e-5, "{by_words} vs {by_windows}");
    // And both are the plain definition: -mean log p(next | previous) over every character
    // and end token.
    let mut total = 0.0f64;
    let mut count = 0;
    let w = ndarray::Array2::from_shape_vec((v.len(), v.len()), table).unwrap();
    for word in WORDS {
        let ids: Vec<usize> =
            [0].into_iter().chain(v.encode(word).unwrap()).chain([0]).map(|i| i as usize).collect();
        for pair in ids.windows(2) {
            let row = w.row(pair[0]);
            let lse = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
            total += lse - f64::from(row[pair[1]]);
            count += 1;
        }
    }
    assert!((by_words - total / count as f64).abs() < 1e-5);
}

#[test]
fn continuing_a_saved_run_of_a_words_model_is_bit_for_bit_one_run() {
    let no = AtomicBool::new(false);
    for kind in [Kind::Transformer, Kind::Gru] {
        let mut whole = fresh(kind, 2);
        let ex = examples(&whole);
        let mut log_whole = Vec::new();
        train(&mut whole, &ex, Some(&ex), &cfg(30), &no, |m| log_whole.push((m.loss.to_bits(), m.dev_loss)))
            .unwrap();
        // Stopped after 13 steps (as Ctrl-C stops a run), then continued.
        let mut first = fresh(kind, 2);
        let mut log_parts = Vec::new();
        let stop = AtomicBool::new(false);
        let report = train(&mut first, &ex, Some(&ex), &cfg(30), &stop, |m| {
            log_parts.push((m.loss.to_bits(), m.dev_loss));
            stop.store(m.step + 1 == 13, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!((report.steps, report.stopped), (13, true));
        let from = Progress { step: 13, adamw: report.progress.adamw };
        train_from(&mut first, &ex, Some(&ex), &cfg(30), &from, &no, |m| {
            log_parts.push((m.loss.to_bits(), m.dev_loss))
        })
        .unwrap();
        assert!(bits(&first) == bits(&whole), "{kind:?}: the weights differ");
        // Step 13 is off the evaluation grid (every 10): the logs must still agree.
        assert_eq!(log_parts, log_whole, "{kind:?}");
    }
}

#[test]
fn examples_cut_for_another_reader_are_a_typed_error() {
    let mut m = fresh(Kind::Rnn, 0);
    let v = vocab();
    let windows = Examples::windows(&WORDS, &v, m.block_size()).unwrap();
    let err = train(&mut m, &windows, None, &cfg(1), &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::Config(_)), "{err}");
    assert!(err.to_string().contains("Examples::new(words, vocab, Words, 10)"), "{err}");
    assert!(evaluate(&m, &windows).is_err());
    // Words too long for the model's block size are the data's error, named.
    let err = Examples::words(&["abigailemmaolivia"], &v, m.block_size()).unwrap_err();
    assert!(err.to_string().contains("abigailemmaolivia"), "{err}");
    // A vocabulary that is not the configuration's.
    let c = ModelConfig { vocab_size: 5, ..small(&v) };
    assert!(Makemore::new(Kind::Bow, c, &v, &mut StdRng::seed_from_u64(0)).is_err());
}

/// The same model without its decoder: sampling re-reads the prefix at every step.
struct Rereading<'a>(&'a Makemore);

impl Model for Rereading<'_> {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn vocab(&self) -> &Vocab {
        self.0.vocab()
    }
    fn block_size(&self) -> usize {
        self.0.block_size()
    }
    fn layout(&self) -> Layout {
        self.0.layout()
    }
    fn config(&self) -> Vec<(&'static str, String)> {
        self.0.config()
    }
    fn params(&self) -> &mm_tensor::ParamStore<f32> {
        self.0.params()
    }
    fn params_mut(&mut self) -> &mut mm_tensor::ParamStore<f32> {
        unreachable!("sampling does not write")
    }
    fn forward<'g>(
        &self,
        g: &'g mm_tensor::Graph<'g, f32>,
        x: ndarray::ArrayView2<'_, u32>,
    ) -> mm_tensor::Var<'g, f32> {
        self.0.forward(g, x)
    }
}

#[test]
fn the_transformers_key_value_cache_gives_the_logits_of_the_whole_prefix() {
    let m = fresh(Kind::Transformer, 7);
    let (b, t) = (5, m.block_size());
    let v = m.vocab().len() as u32;
    let idx = ndarray::Array2::from_shape_fn((b, t), |(i, j)| ((i * 7 + j * 3) as u32) % v);
    // Rows fed in another order than the cache's, as sampling feeds the unfinished ones.
    let rows = [3, 0, 4, 1, 2];
    common::decoder_matches_prefix(&m, &idx, &rows, 1e-5);
    let mut dec = m.decoder(b).expect("the Transformer has a decoder");
    assert!(dec.step(&rows, &[0; 5], t).is_err(), "past the block size");
    // Sampling with the cache gives the names that re-reading the prefix gives, also past the
    // block size (where both crop the context) and with a prefix.
    for cfg in [
        SampleConfig { n: 40, max_len: 30, ..SampleConfig::default() },
        SampleConfig { n: 9, prefix: "av".into(), temperature: 0.7, ..SampleConfig::default() },
    ] {
        assert_eq!(sample(&m, &cfg).unwrap(), sample(&Rereading(&m), &cfg).unwrap());
    }
    let long = sample(&m, &SampleConfig { n: 40, max_len: 30, ..SampleConfig::default() }).unwrap();
    assert!(long.iter().any(|n| n.len() >= m.block_size()), "{long:?}: some samples pass the block size");
}
