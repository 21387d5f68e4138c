//! A real full disk (issue #15): a run on a 2 MiB tmpfs, mounted in a user and mount namespace
//! of its own (`unshare --user --map-root-user --mount`, no root needed where the kernel allows
//! unprivileged user namespaces), filled up before `--resume` saves. Where no namespace can be
//! made (a container that forbids them), the test says so on stderr and checks nothing: the
//! injected write failures of `tests/run_dir.rs` (`MAKEMORE_FAIL_WRITE`) cover those machines.

#![cfg(target_os = "linux")]

use std::path::Path;

mod common;

use common::{makemore, workdir};

/// The script run inside the namespace: the run trained on the tmpfs, the disk filled but for
/// `free` pages, `--resume` (which must fail), a copy of what is left, the filler removed,
/// `--resume` again (which must succeed), a copy of that. Each command's exit code and stderr go
/// to files outside the tmpfs, which vanishes with the namespace.
const SCRIPT: &str = r#"
set -u
mnt="$WORK/mnt"; mkdir -p "$mnt"
mount -t tmpfs -o size=2m tmpfs "$mnt" || exit 77
run() { name=$1; shift; "$BIN" train "$@" --data "$WORK/names.txt" --out "$mnt/run" >"$WORK/$name.out" 2>"$WORK/$name.err"; echo $? >"$WORK/$name.rc"; }
run first --steps 20 --eval-every 10
# Fill the disk, leaving FREE pages: the probe of the directory fits, the save does not.
set -- $(stat -f -c '%a %S' "$mnt")
dd if=/dev/zero of="$mnt/filler" bs="$2" count=$(( $1 - FREE )) 2>/dev/null
run full --resume --steps 40
cp -a "$mnt/run" "$WORK/after-full"
rm "$mnt/filler"
run resumed --resume --steps 40
cp -a "$mnt/run" "$WORK/after-resume"
"#;

fn read(d: &Path, name: &str) -> String {
    std::fs::read_to_string(d.join(name)).unwrap_or_default()
}

fn summary_steps(run: &Path) -> u64 {
    let s: serde_json::Value = serde_json::from_str(&read(run, "summary.json")).unwrap();
    s["steps"].as_u64().unwrap()
}

/// Runs the script with `free` pages left on the filled disk; `None` when no namespace or tmpfs
/// can be made here.
fn on_a_full_tmpfs(free: u32) -> Option<std::path::PathBuf> {
    let d = workdir();
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT])
        .env("WORK", &d)
        .env("BIN", env!("CARGO_BIN_EXE_makemore"))
        .env("FREE", free.to_string())
        .status();
    match status {
        Ok(s) if s.success() => Some(d),
        other => {
            eprintln!(
                "skipped: no user and mount namespace with a tmpfs here ({other:?}); \
                 tests/run_dir.rs injects the write failures instead"
            );
            None
        }
    }
}

/// A run's weights, as raw bits.
fn bits(run: &Path) -> Vec<u32> {
    let (model, _) = mm_models::checkpoint::load(&run.join("model.safetensors")).unwrap();
    let p = model.neural().unwrap().params().clone();
    p.ids().flat_map(|id| p.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

#[test]
fn a_really_full_disk_leaves_the_previous_save_whole_and_the_run_resumes() {
    // 8 pages free: the save of --resume fails while staging its files; 0 pages: the probe of
    // the directory fails before any training.
    let mut resumed = Vec::new();
    for free in [8, 0] {
        let Some(d) = on_a_full_tmpfs(free) else { return };
        assert_eq!(read(&d, "first.rc").trim(), "0", "{}", read(&d, "first.err"));
        let err = read(&d, "full.err");
        assert_eq!(read(&d, "full.rc").trim(), "1", "free {free}: {err}");
        assert!(err.starts_with("error: ") && err.contains("No space left on device"), "free {free}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // The run of the first save, whole, and no staged or temporary files.
        let after = d.join("after-full");
        assert_eq!(summary_steps(&after), 20, "free {free}");
        let (_, meta) = mm_models::checkpoint::load(&after.join("model.safetensors")).unwrap();
        assert_eq!(meta.step, 20, "free {free}");
        assert_eq!(read(&after, "metrics.csv").lines().count(), 21, "free {free}");
        let names: Vec<String> = std::fs::read_dir(&after)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".new.") && !n.ends_with(".tmp") && n != ".commit"),
            "free {free}: {names:?}"
        );
        // With room again, --resume continues it to the end.
        assert_eq!(read(&d, "resumed.rc").trim(), "0", "free {free}: {}", read(&d, "resumed.err"));
        assert_eq!(summary_steps(&d.join("after-resume")), 40);
        resumed.push(bits(&d.join("after-resume")));
        std::fs::remove_dir_all(&d).unwrap();
    }
    // The same run never interrupted ends with the same weights.
    let d = workdir();
    let o = makemore()
        .args(["train", "--steps", "40", "--eval-every", "10", "--decay-step", "10", "--data"])
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join("whole"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for r in resumed {
        assert!(r == bits(&d.join("whole")), "the resumed run's weights differ from the uninterrupted run's");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
