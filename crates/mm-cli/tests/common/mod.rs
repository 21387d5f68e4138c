//! Shared by the CLI tests: the binary, and a fresh directory with a small dataset.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout};
use std::time::Duration;

use assert_cmd::Command;

/// The `makemore` binary.
pub fn makemore() -> Command {
    Command::cargo_bin("makemore").unwrap()
}

/// A fresh directory holding a small dataset `names.txt`.
pub fn workdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mm-cli-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    let names =
        ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"];
    std::fs::write(d.join("names.txt"), names.join("\n")).unwrap();
    d
}

/// A `makemore train` spawned with its stdout piped, past the line of its parameter count: it
/// prints that once its Ctrl-C / SIGTERM handler is set and its run directory locked. Tests wait
/// for it rather than sleep a fixed time from the spawn, which races with a slow start on a
/// loaded machine (a signal would find no handler). Half a second after it, a run of the tests'
/// tiny models has done thousands of steps (each takes microseconds), so "no step done" would
/// take a machine stalled for that long.
#[allow(dead_code)]
pub struct Training {
    out: BufReader<ChildStdout>,
    text: String,
}

#[allow(dead_code)]
impl Training {
    /// Reads `child`'s stdout up to the parameter count.
    pub fn wait(child: &mut Child) -> Training {
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    e.read_to_string(&mut err).unwrap();
                }
                panic!("train ended before training: {text}{err}");
            }
            text.push_str(&line);
            if line.trim_end().ends_with(" parameters") {
                return Training { out, text };
            }
        }
    }

    /// After half a second of steps, sends `sig` to `child`; returns the whole of its stdout.
    pub fn signal(mut self, child: &Child, sig: &str) -> String {
        std::thread::sleep(Duration::from_millis(500));
        std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        self.out.read_to_string(&mut self.text).unwrap();
        self.text
    }
}

/// [`Training::wait`], then [`Training::signal`].
#[allow(dead_code)]
pub fn signal_once_training(child: &mut Child, sig: &str) -> String {
    Training::wait(child).signal(child, sig)
}
