//! The multiply-add peak of one core, measured: twelve independent chains of vector FMAs, as
//! wide as the gemm path's, timed over a few milliseconds, the best of several trials.
//!
//! Why measure it: "the products at 60% of the core's FMA peak" (the bench's rule for a
//! compute-bound step) needs the peak, and the clock that `/proc/cpuinfo` reports is the
//! nominal one. A core in turbo runs faster: this project's VM reports 2,600 MHz, and its cores
//! run the loop below at 115 G multiply-adds a second, 2 FMAs of 16 lanes a cycle at 3.6 GHz. A
//! bound from the nominal clock would be 1.4x too loose there. Twelve chains cover the FMA's
//! latency (4 cycles) on both ports (8 in flight), with room to spare; each chain is
//! `acc = acc · b + c` on values that stay normal, so nothing slows the units down. The loop is
//! what `likwid-bench -t peakflops` measures; PyTorch has no equivalent.

use std::hint::black_box;
use std::time::Instant;

use super::matmul::GemmPath;

/// Independent chains: enough to fill two FMA ports of 4 cycles' latency.
const CHAINS: usize = 12;
/// Loop rounds per trial: 12 chains × 16 lanes × 2^19 rounds is 100 M multiply-adds, about
/// 1 ms at AVX-512's peak.
const ROUNDS: u64 = 1 << 19;
/// Trials; the best is the peak (the least disturbed by other work on the machine).
const TRIALS: usize = 24;

/// Multiply-adds per second that one core reaches with the vectors of `path` (16 `f32` lanes
/// for AVX-512, 8 for AVX2 + FMA; the portable path as compiled for this CPU), measured now:
/// the best of [`TRIALS`] trials of about a millisecond each. `None` where the path cannot run
/// here, or where its width is not known to this loop (a CPU without AVX2 + FMA, or not x86_64:
/// the caller estimates the peak another way).
pub(crate) fn fma_peak(path: GemmPath) -> Option<f64> {
    let lanes = lanes(path)?;
    let mut best = f64::INFINITY;
    for trial in 0..=TRIALS {
        let start = Instant::now();
        black_box(chains(lanes, ROUNDS)?);
        let seconds = start.elapsed().as_secs_f64();
        // Trial 0 warms the units up (a core may need time to reach its AVX-512 clock).
        if trial > 0 {
            best = best.min(seconds);
        }
    }
    Some((CHAINS * lanes) as f64 * ROUNDS as f64 / best)
}

/// The `f32` lanes of the FMA instructions that `path` runs on this CPU, if this loop knows them.
fn lanes(path: GemmPath) -> Option<usize> {
    if path.unsupported().is_some() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = is_x86_feature_detected!("avx512f");
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        match path {
            GemmPath::Avx512 => Some(16),
            GemmPath::Portable if avx512 => Some(16),
            GemmPath::Avx2 | GemmPath::PortableAvx2 | GemmPath::Portable if avx2 => Some(8),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `rounds` rounds of [`CHAINS`] independent FMAs of `lanes` lanes; their sum, so that nothing
/// is optimised away.
fn chains(lanes: usize, rounds: u64) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        match lanes {
            16 if is_x86_feature_detected!("avx512f") => {
                // SAFETY: this CPU has AVX-512F (checked in the arm's guard).
                return Some(unsafe { chains_avx512(rounds) });
            }
            8 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => {
                // SAFETY: this CPU has AVX2 and FMA (checked in the arm's guard).
                return Some(unsafe { chains_avx2(rounds) });
            }
            _ => {}
        }
    }
    let _ = (lanes, rounds);
    None
}

/// The chains on 512-bit vectors.
///
/// # Safety
///
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chains_avx512(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let b = _mm512_set1_ps(black_box(1.0 - 1e-7));
    let c = _mm512_set1_ps(black_box(1e-7));
    let mut acc = [_mm512_set1_ps(black_box(1.0)); CHAINS];
    for _ in 0..black_box(rounds) {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    _mm512_reduce_add_ps(acc.into_iter().fold(_mm512_set1_ps(0.0), |s, a| _mm512_add_ps(s, a)))
}

/// The chains on 256-bit vectors.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(rounds: u64) -> f32 {
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let b = _mm256_set1_ps(black_box(1.0 - 1e-7));
    let c = _mm256_set1_ps(black_box(1e-7));
    let mut acc = [_mm256_set1_ps(black_box(1.0)); CHAINS];
    for _ in 0..black_box(rounds) {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let sum: __m256 = acc.into_iter().fold(_mm256_set1_ps(0.0), |s, a| _mm256_add_ps(s, a));
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chains_compute_what_they_say() {
        // acc ← acc·b + c with b = 1 - 1e-7, c = 1e-7 keeps acc = 1 (to f32 rounding): the sum
        // of 12 chains × lanes is 12 × lanes, whatever the number of rounds.
        for lanes in [8, 16] {
            if let Some(sum) = chains(lanes, 1000) {
                assert!((sum - (CHAINS * lanes) as f32).abs() < 1e-2, "{lanes} lanes: {sum}");
            }
        }
    }

    #[test]
    fn a_path_that_cannot_run_has_no_peak_and_one_that_runs_has_one_where_its_width_is_known() {
        for path in GemmPath::ALL {
            match (path.unsupported(), lanes(path)) {
                (Some(_), _) => assert_eq!(fma_peak(path), None, "{path}"),
                (None, Some(_)) => {
                    assert!(fma_peak(path).is_some_and(|p| p.is_finite() && p > 0.0), "{path}")
                }
                (None, None) => assert_eq!(fma_peak(path), None, "{path}"),
            }
        }
    }
}
