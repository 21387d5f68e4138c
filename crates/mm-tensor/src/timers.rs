//! Timers around the kernels whose cost inside a training step differs from their cost alone:
//! every matrix product (by shape and operand layout) and the fused attention's forward and
//! backward. Compiled only with the `kernel-timers` feature (off by default: a timer takes a
//! lock per call), for `examples/transformer_step --kernels`, which set the products' and the
//! attention's "in the step" figures of `docs/performance.md` (session 13).
//!
//! Why: alone, on warm operands, a kernel reaches its best speed; in a step its operands come
//! from memory last touched long before, and only a timer inside the step shows what that costs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// A timed kernel: its name and its sizes (`m × k × n` for a product; `b, t, c` for attention).
pub type Kernel = (&'static str, [usize; 3]);

/// Calls and total nanoseconds per kernel since the last [`take`].
static TIMES: Mutex<BTreeMap<Kernel, (u64, u64)>> = Mutex::new(BTreeMap::new());

/// Times one call, from [`Timer::start`] to its drop.
pub(crate) struct Timer {
    kernel: Kernel,
    start: Instant,
}

impl Timer {
    pub(crate) fn start(kernel: Kernel) -> Self {
        Timer { kernel, start: Instant::now() }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // A poisoned lock (a panic while timing) loses the timings, never the computation.
        if let Ok(mut times) = TIMES.lock() {
            let (calls, total) = times.entry(self.kernel).or_default();
            *calls += 1;
            *total += ns;
        }
    }
}

/// Every kernel timed since the last call, with its calls and total nanoseconds, in order of
/// name and sizes; the timers start again from zero.
pub fn take() -> Vec<(Kernel, u64, u64)> {
    TIMES
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (c, ns))| (k, c, ns))
        .collect()
}
