//! `makemore eval`: a checkpoint's loss on the lectures' splits of a dataset, or an ensemble's
//! (several checkpoints: the mixture of their distributions).

use anyhow::bail;
use mm_data::{Examples, Layout, Split, SplitSpec};
use mm_models::checkpoint::ModelRef;
use mm_models::{evaluate, evaluate_ensemble, perplexity};

use crate::cli::{EvalArgs, SplitArg};

/// Runs `makemore eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (models, alpha) =
        crate::sample::load_checkpoints(&args.checkpoint, args.allow_non_finite, args.alpha)?;
    let ensemble = match models.len() {
        1 => None,
        _ => Some(crate::sample::ensemble(&args.checkpoint, &models)?),
    };
    let data = crate::data::load(&args.data.data)?;
    let split = Split::new(data.words(), SplitSpec::default())?;
    let wanted: Vec<(&str, &Vec<String>)> =
        [("train", &split.train), ("dev", &split.dev), ("test", &split.test)]
            .into_iter()
            .filter(|(name, _)| match args.split {
                SplitArg::All => true,
                SplitArg::Train => *name == "train",
                SplitArg::Dev => *name == "dev",
                SplitArg::Test => *name == "test",
            })
            .collect();
    // The words to evaluate checked before any split's loss is printed: every character in the
    // checkpoint's vocabulary, every word within its block.
    let vocab = models[0].vocab();
    let words = || wanted.iter().flat_map(|(_, w)| w.iter());
    if let Some(ch) = words().flat_map(|w| w.chars()).find(|&c| vocab.id(c).is_err()) {
        bail!(
            "{} has the character {:?}, which the vocabulary of {} ({}) does not: evaluate it on data of its characters, such as the data it was trained on",
            args.data.data.display(),
            ch,
            args.checkpoint[0].display(),
            crate::data::shown(&vocab.to_string())
        );
    }
    let longest = words().map(|w| w.chars().count()).max().unwrap_or(0);
    if let Some(m) = models[0].neural()
        && m.layout() == Layout::Words
        && m.block_size() <= longest
    {
        bail!(
            "the longest line to evaluate in {} has {longest} characters, and {} reads lines of at most {} (its block_size is {}): evaluate it on data whose lines fit",
            args.data.data.display(),
            args.checkpoint[0].display(),
            m.block_size() - 1,
            m.block_size()
        );
    }
    for (name, words) in wanted {
        if words.is_empty() {
            // A small dataset may leave a split empty: no loss, said as such.
            let (a, b, c) = (split.train.len(), split.dev.len(), split.test.len());
            println!("{name:5} no words (the split of {} words is {a} / {b} / {c}, 80/10/10)", a + b + c);
            continue;
        }
        let loss = match (&ensemble, models[0].as_model()) {
            (Some(ms), _) => {
                let m = ms[0];
                evaluate_ensemble(ms, &Examples::new(words, m.vocab(), m.layout(), m.block_size())?)?
            }
            (None, ModelRef::Counts(m)) => m.nll(words, alpha)?,
            (None, ModelRef::Neural(m)) => {
                evaluate(m, &Examples::new(words, m.vocab(), m.layout(), m.block_size())?)?
            }
        };
        println!("{name:5} loss {loss:.4}  perplexity {:.2}", perplexity(loss));
    }
    Ok(())
}
