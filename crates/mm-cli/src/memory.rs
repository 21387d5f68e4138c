//! How much memory a run may still take, so that `train` can refuse a batch whose step would not
//! fit with a one-line error: Rust aborts the process when an allocation fails, with no chance
//! to say which flag to change.

/// The bytes this process may still allocate: the system's available memory (`MemAvailable` of
/// `/proc/meminfo`), or less under an address-space limit (`ulimit -v`: its soft limit less
/// what the process has mapped). `None` where it cannot be read (not Linux).
pub fn available() -> Option<u64> {
    let field = |text: &str, key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut free = field(&meminfo, "MemAvailable:")?.saturating_mul(1024);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let (Some(limit), Some(mapped)) = (field(&limits, "Max address space"), field(&status, "VmSize:")) {
        free = free.min(limit.saturating_sub(mapped.saturating_mul(1024)));
    }
    Some(free)
}

/// `bytes` in the unit a reader takes in at a glance (`1.5 GiB`, `300 MiB`).
pub fn shown(bytes: u128) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 { format!("{:.1} GiB", mib / 1024.0) } else { format!("{mib:.0} MiB") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(super::shown(300 << 20), "300 MiB");
        assert_eq!(super::shown(3 << 29), "1.5 GiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_says_what_is_available() {
        let free = super::available().expect("/proc/meminfo has MemAvailable");
        assert!(free > 1 << 20, "{free}");
    }
}
