//! `makemore info`: a dataset's statistics and split sizes.

use mm_data::{Examples, Split, SplitSpec};

use crate::cli::InfoArgs;

/// Runs `makemore info`.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let data = crate::data::load(&args.data.data)?;
    let s = data.stats();
    let vocab = data.vocab();
    println!("dataset      {}", args.data.data.display());
    println!("items        {}", s.items);
    println!("distinct     {}", s.distinct);
    println!("duplicates   {}", s.duplicates);
    // Escaped: a vocabulary may hold characters that do not show (a zero-width joiner).
    println!("vocabulary   {} tokens: {}", vocab.len(), crate::data::shown(&vocab.to_string()));
    println!("length       min {}, max {}, mean {:.2}", s.min_len, s.max_len, s.mean_len);
    let split = Split::new(data.words(), SplitSpec::default())?;
    println!(
        "split words  train {} / dev {} / test {} (seed 42, 80/10/10)",
        split.train.len(),
        split.dev.len(),
        split.test.len()
    );
    let sizes = [&split.train, &split.dev, &split.test]
        .map(|w| Examples::windows(w, &vocab, 3).map(|e| e.len()).unwrap_or(0));
    println!("examples     train {} / dev {} / test {} (block_size 3)", sizes[0], sizes[1], sizes[2]);
    Ok(())
}
