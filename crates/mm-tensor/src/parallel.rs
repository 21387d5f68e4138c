//! The threads of a data-parallel training step ([`Workers`]), and the per-parameter work of a
//! step (the sum of the shards' gradients, AdamW's update) cut across them: the parameters, in
//! order, into runs of about equal element counts, one run per thread. Each element goes through
//! the same arithmetic whichever thread runs it, so the result is the same bits on any number of
//! threads; only the wall time changes.
//!
//! The workers live across steps (a `rayon` pool of `threads - 1` threads beside the caller): a
//! phase hands its jobs to a thread that waits (spinning briefly, then asleep), where a thread
//! spawned per phase (`std::thread::scope`) costs about 35 µs on this project's VM. Waking a
//! thread that has fallen asleep costs about as much there, so the calling thread, done with its
//! own job, spins for the workers' (up to 200 µs) before it lets the scope put it to sleep; and
//! per-parameter work stays on the calling thread below [`MIN_ELEMENTS`] (the lecture MLP's
//! 11,897 parameters take about a microsecond to update). Measured on the Transformer's step over
//! 2 shards on 2 threads (`examples/transformer_step`, medians of 8 runs each, alternated): a
//! spawn per step 3.49 ms, these workers 3.29 ms, and with the spin 3.07-3.16 ms (against
//! 3.23-3.28 ms without it in the same minutes); see docs/performance.md.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the calling thread waits for the workers awake before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// Below this many elements in all, per-parameter work stays on the calling thread: a hand-over
/// to a worker costs more than it saves.
pub(crate) const MIN_ELEMENTS: usize = 1 << 16;

/// Where runs of consecutive items of about equal weight end, for at most `parts` runs: the
/// exclusive end index of each run, ascending, the last one `weights.len()`. No run is empty
/// (but the single run of an empty list).
pub(crate) fn cuts(weights: impl Iterator<Item = usize> + Clone, parts: usize) -> Vec<usize> {
    let n = weights.clone().count();
    let total: usize = weights.clone().sum();
    let parts = parts.clamp(1, n.max(1));
    let mut ends = Vec::with_capacity(parts);
    let (mut sum, mut start) = (0usize, 0usize);
    for (i, w) in weights.enumerate() {
        // Run k ends where the prefix sum is nearest k/parts of the total (all in 1/parts units):
        // before item i or after it, leaving at least one item for each run still to come.
        let k = ends.len() + 1;
        // In u128: element counts times a thread count cannot overflow.
        let (target, before, after) =
            (wide(total) * wide(k), wide(sum) * wide(parts), wide(sum + w) * wide(parts));
        if k < parts && after >= target {
            let nearer_before = target.saturating_sub(before) < after - target;
            let fits = |end: usize| end > start && n - end >= parts - k;
            let end = if nearer_before && fits(i) { i } else { i + 1 };
            if fits(end) {
                ends.push(end);
                start = end;
            }
        }
        sum += w;
    }
    ends.push(n);
    ends
}

fn wide(n: usize) -> u128 {
    n as u128
}

/// `xs` cut at `ends` (from [`cuts`]): one mutable slice per run.
pub(crate) fn split_mut<'a, X>(mut xs: &'a mut [X], ends: &[usize]) -> Vec<&'a mut [X]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let (run, rest) = std::mem::take(&mut xs).split_at_mut(end - start);
            (xs, start) = (rest, end);
            run
        })
        .collect()
}

/// Threads for the phases of a training step: the calling thread plus `threads - 1` workers that
/// wait between phases. Cloning shares the workers. They never change a result, so any two
/// compare equal.
///
/// ```
/// use mm_tensor::Workers;
/// let workers = Workers::new(2);
/// assert!((1..=2).contains(&workers.threads())); // 1 where the system refuses a thread
/// assert_eq!(Workers::new(0).threads(), 1); // at least the calling thread
/// ```
#[derive(Clone, Default)]
pub struct Workers {
    /// `None` for the calling thread alone (or if the system refused threads: the same results).
    pool: Option<Arc<rayon_core::ThreadPool>>,
}

impl Workers {
    /// The calling thread and `threads - 1` workers (`threads` at least 1).
    pub fn new(threads: usize) -> Self {
        let pool = (threads > 1)
            .then(|| rayon_core::ThreadPoolBuilder::new().num_threads(threads - 1).build().ok())
            .flatten()
            .map(Arc::new);
        Workers { pool }
    }

    /// The threads a phase can use, the calling one included.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads() + 1)
    }

    /// Runs the jobs, the first on the calling thread and the others on the workers (on the
    /// calling thread, in order, without workers), at once if there are no more jobs than
    /// [`Workers::threads`], as the callers ensure. Returns when all are done. Allocates (the
    /// jobs handed over), except without workers.
    pub(crate) fn run_all<J: FnOnce() + Send>(&self, jobs: impl IntoIterator<Item = J>) {
        let mut jobs = jobs.into_iter();
        let Some(first) = jobs.next() else { return };
        match &self.pool {
            Some(pool) => {
                let pending = AtomicUsize::new(0);
                let pending = &pending;
                pool.in_place_scope(|scope| {
                    for job in jobs {
                        pending.fetch_add(1, Ordering::Relaxed);
                        scope.spawn(move |_| {
                            job();
                            pending.fetch_sub(1, Ordering::Release);
                        });
                    }
                    first();
                    // Spin a while for the workers before the scope's wait puts this thread to
                    // sleep: on a VM, waking a sleeping thread takes tens of microseconds.
                    let start = Instant::now();
                    while pending.load(Ordering::Acquire) > 0 && start.elapsed() < SPIN {
                        for _ in 0..64 {
                            std::hint::spin_loop();
                        }
                    }
                })
            }
            None => {
                first();
                jobs.for_each(|job| job());
            }
        }
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers").field("threads", &self.threads()).finish()
    }
}

impl PartialEq for Workers {
    /// Always: workers change no result.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_balance_the_elements_and_never_leave_a_run_empty() {
        // The Transformer's block: ln (64, 64), c_attn (12,288, 192), c_proj (4,096, 64), ...
        let lens = [64, 64, 12_288, 192, 4_096, 64, 64, 64, 16_384, 256, 16_384, 64];
        let ends = cuts(lens.iter().copied(), 2);
        assert_eq!(ends, vec![8, 12]); // 16,896 | 33,088 elements (after the 9th: 33,280 | 16,704)
        assert_eq!(cuts(lens.iter().copied(), 1), vec![12]);
        // One huge first item: every other run still gets one item.
        assert_eq!(cuts([100, 1, 1].into_iter(), 3), vec![1, 2, 3]);
        assert_eq!(cuts([1, 1].into_iter(), 5), vec![1, 2]);
        assert_eq!(cuts(std::iter::empty(), 2), vec![0]);
        let mut xs = [1, 2, 3, 4];
        let runs = split_mut(&mut xs, &[1, 4]);
        assert_eq!(runs, vec![&mut [1][..], &mut [2, 3, 4][..]]);
    }

    #[test]
    fn run_all_runs_every_job_with_and_without_workers() {
        for threads in [1, 2, 3] {
            let mut outs = [0; 4];
            Workers::new(threads).run_all(outs.iter_mut().enumerate().map(|(i, o)| move || *o = i + 1));
            assert_eq!(outs, [1, 2, 3, 4], "{threads} threads");
        }
    }
}
