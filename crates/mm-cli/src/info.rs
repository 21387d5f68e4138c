//! `makemore info`: a dataset's statistics and split sizes; with `--system`, the machine's CPU
//! and the matrix-multiply kernel the engine runs on it.

use mm_data::{Examples, Split, SplitSpec};

use crate::cli::InfoArgs;

/// Runs `makemore info`.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    if args.system {
        system();
        return Ok(());
    }
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

/// `makemore info --system`: the CPU, the vector instruction sets the kernels use, and the gemm
/// path in use with the others this CPU runs or lacks, and one core's multiply-add peak on it.
fn system() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no model name in /proc/cpuinfo)".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cpu          {cpu}, {cores} cores, {}", std::env::consts::ARCH);
    let features: Vec<String> = mm_tensor::cpu_features()
        .into_iter()
        .map(|(name, has)| format!("{name} {}", if has { "yes" } else { "no" }))
        .collect();
    println!(
        "features     {}",
        if features.is_empty() { "none detected".into() } else { features.join(", ") }
    );
    let path = mm_tensor::gemm_path();
    let why = match (std::env::var("MM_GEMM"), mm_tensor::gemm_path_problem()) {
        (_, Some(problem)) => format!("MM_GEMM ignored: {problem}; the fastest path here instead"),
        (Ok(name), None) => format!("forced by MM_GEMM={name}"),
        (Err(_), None) => {
            "the fastest path here; MM_GEMM=avx512|avx2|portable|portable-avx2 forces one".into()
        }
    };
    println!("gemm         {path} ({why})");
    let runs: Vec<&str> =
        mm_tensor::GemmPath::ALL.iter().filter(|p| p.unsupported().is_none()).map(|p| p.name()).collect();
    let lacks: Vec<String> =
        mm_tensor::GemmPath::ALL.iter().filter_map(|p| Some(format!("{p} ({})", p.unsupported()?))).collect();
    println!(
        "gemm paths   runs {}; lacks {}",
        runs.join(", "),
        if lacks.is_empty() { "none".into() } else { lacks.join(", ") }
    );
    match mm_tensor::fma_peak(path) {
        Some(per_s) => {
            println!("fma peak     {:.1} GMAC/s on one core ({path}'s vectors, measured now)", per_s / 1e9)
        }
        None => println!("fma peak     not measured ({path}'s vectors have no peak loop on this CPU)"),
    }
}
