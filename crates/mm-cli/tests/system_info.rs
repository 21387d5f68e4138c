//! `makemore info --system`: the CPU, the gemm path, forced or not by `MM_GEMM`, and its FMA peak.

use assert_cmd::Command;

fn system(gemm: Option<&str>) -> String {
    let mut cmd = Command::cargo_bin("makemore").unwrap();
    cmd.args(["info", "--system"]);
    match gemm {
        Some(v) => cmd.env("MM_GEMM", v),
        None => cmd.env_remove("MM_GEMM"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} line: {text}"))
}

#[test]
fn info_system_names_the_cpu_features_and_the_gemm_path() {
    let text = system(None);
    assert!(line(&text, "cpu ").contains("cores"), "{text}");
    let best = mm_tensor::GemmPath::best();
    assert!(line(&text, "gemm ").starts_with(&format!("gemm         {best} (the fastest")), "{text}");
    #[cfg(target_arch = "x86_64")]
    assert!(line(&text, "features ").contains("avx2 "), "{text}");
    assert!(line(&text, "gemm paths ").contains("portable"), "{text}");
    // The peak line says where it was measured and where it could not be.
    let peak = line(&text, "fma peak ");
    match mm_tensor::fma_peak(best) {
        Some(_) => assert!(peak.contains("GMAC/s on one core") && peak.contains(best.name()), "{text}"),
        None => assert!(peak.contains("not measured"), "{text}"),
    }
}

#[test]
fn mm_gemm_forces_a_path_and_a_bad_value_is_reported() {
    let text = system(Some("portable"));
    assert!(line(&text, "gemm ").starts_with("gemm         portable (forced by MM_GEMM=portable)"), "{text}");
    let text = system(Some("sse9"));
    let gemm = line(&text, "gemm ");
    assert!(gemm.contains("MM_GEMM ignored: unknown gemm path \"sse9\""), "{text}");
    assert!(gemm.starts_with(&format!("gemm         {} ", mm_tensor::GemmPath::best())), "{text}");
    // A path this CPU lacks is named as such, and the fastest runs instead.
    if let Some(lacking) = mm_tensor::GemmPath::ALL.into_iter().find(|p| p.unsupported().is_some()) {
        let text = system(Some(lacking.name()));
        assert!(line(&text, "gemm ").contains("cannot run here"), "{text}");
    } else {
        eprintln!(
            "mm_gemm_forces_a_path_and_a_bad_value_is_reported: this CPU runs every path; the unsupported case is not checked"
        );
    }
}
