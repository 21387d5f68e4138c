//! A run directory (`makemore train --out DIR`): claimed by one `train` at a time, checked to be
//! writable before training, and saved so that a crash at any instant leaves the old run or the
//! new one, never a mixture of the two.
//!
//! A save ([`RunDir::commit`]) writes each new file under a staged name (`.new.<name>`), fsyncs
//! them, then writes the commit record `.commit` (atomically) listing the renames to do and the
//! files of an earlier run to remove; from that instant the new run is the directory's. It then
//! renames each staged file over its final name, removes the old run's leftovers, and removes the
//! record. Opening the directory ([`RunDir::open`]) finishes a save whose record is there, and
//! throws away staged files whose save never reached its record.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use mm_models::checkpoint::{sync_dir, write_atomically};

/// Every file a run may hold. A save removes those that are not part of the new run, so that a
/// directory never holds files of two runs (`--force` with another kind of model).
pub const RUN_FILES: [&str; 5] =
    ["metrics.csv", "best.safetensors", "model.safetensors", "loss.png", "summary.json"];

/// The lock file, held (flock) for as long as a [`RunDir`] lives.
pub const LOCK: &str = ".lock";
/// The commit record of a save in progress.
const JOURNAL: &str = ".commit";
/// The prefix of a staged file.
const STAGED: &str = ".new.";

/// What went wrong with a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// `--out` names something that is not a directory.
    #[error("{0} is not a directory: pass --out with a directory")]
    NotADirectory(PathBuf),
    /// The directory cannot be created, or a file cannot be written in it.
    #[error("cannot write to {path}")]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("{0} is in use by another makemore train: wait for it to end, or pass --out DIR")]
    Busy(PathBuf),
    /// A file operation of a save failed (a full disk, ...).
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The commit record of an interrupted save is not one this version writes.
    #[error("{0}: an unreadable record of an interrupted save: remove it and check the run's files")]
    Journal(PathBuf),
}

type Result<T> = std::result::Result<T, RunDirError>;

/// A hook called at each point of a save (`staged`, `journal`, `renamed <file>`, `committed`):
/// the crash-consistency tests kill the process there.
pub type Hook = Box<dyn Fn(&str)>;

/// A claimed run directory. The claim (an advisory lock on `.lock`) lasts until it is dropped.
pub struct RunDir {
    path: PathBuf,
    _lock: File,
    /// Whether `open` created the directory (removed again if nothing is ever committed).
    created: bool,
    committed: bool,
    hook: Option<Hook>,
    /// A staged file whose write fails as on a full disk (see [`RunDir::fail_writes_of`]).
    failing: Option<String>,
}

impl std::fmt::Debug for RunDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunDir").field("path", &self.path).field("created", &self.created).finish()
    }
}

impl RunDir {
    /// Creates the directory if needed, checks that files can be written in it (a probe file,
    /// created, fsync'd and removed), claims it (or fails with [`RunDirError::Busy`]), and
    /// finishes or discards a save that a crash interrupted.
    pub fn open(path: &Path) -> Result<RunDir> {
        let unwritable = |source| RunDirError::Unwritable { path: path.to_path_buf(), source };
        if path.exists() && !path.is_dir() {
            return Err(RunDirError::NotADirectory(path.to_path_buf()));
        }
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(|e| {
            // A file on the way, e.g. --out FILE/run.
            if path.ancestors().skip(1).any(|a| a.is_file()) {
                RunDirError::NotADirectory(path.to_path_buf())
            } else {
                unwritable(e)
            }
        })?;
        let probe = path.join(format!(".probe.{}", std::process::id()));
        let probed = (|| {
            let mut f = File::create(&probe)?;
            f.write_all(b"makemore")?;
            f.sync_all()?;
            std::fs::remove_file(&probe)
        })();
        if let Err(e) = probed {
            let _ = std::fs::remove_file(&probe);
            if created {
                let _ = std::fs::remove_dir(path);
            }
            return Err(unwritable(e));
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK))
            .map_err(unwritable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(RunDirError::Busy(path.to_path_buf())),
            Err(TryLockError::Error(source)) => {
                return Err(RunDirError::Io { what: "lock", path: path.join(LOCK), source });
            }
        }
        let dir = RunDir {
            path: path.to_path_buf(),
            _lock: lock,
            created,
            committed: false,
            hook: None,
            failing: None,
        };
        dir.recover()?;
        Ok(dir)
    }

    /// Calls `hook` at each point of every save.
    pub fn set_hook(&mut self, hook: Hook) {
        self.hook = Some(hook);
    }

    /// Makes every write of the staged file `name` fail as on a full disk (`ENOSPC`, after half
    /// its bytes are written): for the tests of what a full disk leaves.
    pub fn fail_writes_of(&mut self, name: &str) {
        self.failing = Some(name.to_string());
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final path of the run file `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the directory holds a run (a checkpoint or a summary).
    pub fn holds_a_run(&self) -> bool {
        self.file("model.safetensors").exists() || self.file("summary.json").exists()
    }

    /// Where to write the new version of `name` before [`commit`](Self::commit): `.new.<name>`
    /// (the extension is kept, for writers that go by it).
    pub fn staged(&self, name: &str) -> PathBuf {
        self.path.join(format!("{STAGED}{name}"))
    }

    /// Writes `bytes` as the new version of `name`, for the next commit.
    pub fn stage(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.staged(name);
        let written = if self.failing.as_deref() == Some(name) {
            // A full disk: part of the file, then ENOSPC.
            std::fs::write(&path, &bytes[..bytes.len() / 2])
                .and_then(|()| Err(std::io::Error::from_raw_os_error(28)))
        } else {
            std::fs::write(&path, bytes)
        };
        written.map_err(|source| RunDirError::Io { what: "write", path, source })
    }

    /// Makes the staged files `written` (in this order; the commit record, e.g. `summary.json`,
    /// last) the run's, keeps `kept` as they are, and removes the other [`RUN_FILES`]. A crash at
    /// any instant leaves the run of the previous commit or of this one.
    pub fn commit(&mut self, written: &[&str], kept: &[&str]) -> Result<()> {
        for name in written {
            let path = self.staged(name);
            let synced = File::open(&path).and_then(|f| f.sync_all());
            synced.map_err(|source| RunDirError::Io { what: "write", path, source })?;
        }
        self.sync()?;
        self.point("staged");
        let mut record = String::new();
        for name in written {
            record += &format!("rename {name}\n");
        }
        for name in RUN_FILES.iter().filter(|n| !written.contains(n) && !kept.contains(n)) {
            record += &format!("remove {name}\n");
        }
        let journal = self.path.join(JOURNAL);
        write_atomically(&journal, record.as_bytes()).map_err(|e| RunDirError::Io {
            what: "write",
            path: journal.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.point("journal");
        self.apply(&record)?;
        self.point("committed");
        self.committed = true;
        Ok(())
    }

    /// Finishes a save whose record is there; otherwise removes staged files and temporaries.
    fn recover(&self) -> Result<()> {
        let journal = self.path.join(JOURNAL);
        match std::fs::read_to_string(&journal) {
            Ok(record) => self.apply(&record)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RunDirError::Io { what: "read", path: journal, source }),
        }
        let entries = std::fs::read_dir(&self.path).map_err(|source| RunDirError::Io {
            what: "read",
            path: self.path.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Staged files, and the temporaries of atomic writes and pictures of processes that
            // are gone.
            if name.starts_with(STAGED) || stale_temporary(&name) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| RunDirError::Io {
                    what: "remove",
                    path,
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Carries out a commit record: renames (a staged file already renamed is skipped), removals,
    /// then removes the record.
    fn apply(&self, record: &str) -> Result<()> {
        let journal = self.path.join(JOURNAL);
        for line in record.lines() {
            let (op, name) = line.split_once(' ').ok_or_else(|| RunDirError::Journal(journal.clone()))?;
            if !RUN_FILES.contains(&name) {
                return Err(RunDirError::Journal(journal.clone()));
            }
            let path = self.file(name);
            match op {
                "rename" => {
                    let staged = self.staged(name);
                    if staged.exists() {
                        std::fs::rename(&staged, &path).map_err(|source| RunDirError::Io {
                            what: "rename",
                            path: staged,
                            source,
                        })?;
                    }
                    self.point(&format!("renamed {name}"));
                }
                "remove" => match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(RunDirError::Io { what: "remove", path, source }),
                },
                _ => return Err(RunDirError::Journal(journal.clone())),
            }
        }
        self.sync()?;
        std::fs::remove_file(&journal).map_err(|source| RunDirError::Io {
            what: "remove",
            path: journal.clone(),
            source,
        })?;
        // Synced, so that a power cut cannot bring the record back to be replayed over the next
        // save's staged files.
        self.sync()
    }

    fn sync(&self) -> Result<()> {
        sync_dir(&self.path).map_err(|source| RunDirError::Io {
            what: "sync",
            path: self.path.clone(),
            source,
        })
    }

    fn point(&self, at: &str) {
        if let Some(hook) = &self.hook {
            hook(at);
        }
    }
}

/// Whether `name` is a temporary file (`.<name>.<pid>.tmp` of an atomic write, or
/// `.<name>.<pid>.tmp.png` / `.tmp.svg` of a picture) left by a process that no longer runs:
/// killed during its fsync, it never renamed or removed it. One of a live process (`makemore
/// plot loss` drawing into the run) is left to it.
fn stale_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else { return false };
    let Some(rest) = [".tmp", ".tmp.png", ".tmp.svg"].iter().find_map(|t| rest.strip_suffix(t)) else {
        return false;
    };
    let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if pid != std::process::id() => {
            let proc = Path::new("/proc");
            // Without /proc (not Linux) no process can be found: the file is taken as stale.
            !proc.join(pid.to_string()).exists() || !proc.join("self").exists()
        }
        _ => true,
    }
}

impl Drop for RunDir {
    /// A save that failed (a full disk, ...) leaves no staged files (or, past its commit record,
    /// is finished), and a directory this run created and never saved into is removed again: a
    /// failed command leaves no files.
    fn drop(&mut self) {
        self.hook = None;
        let _ = self.recover();
        if self.created && !self.committed {
            let _ = std::fs::remove_file(self.path.join(LOCK));
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mm-run-dir-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn read(d: &Path, name: &str) -> String {
        std::fs::read_to_string(d.join(name)).unwrap()
    }

    fn leftovers(d: &Path) -> Vec<String> {
        let names = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
        names.filter(|n| n.starts_with(STAGED) || n.ends_with(".tmp") || n == JOURNAL).collect()
    }

    #[test]
    fn a_failed_save_leaves_the_previous_one_and_no_staged_files() {
        let d = tmp();
        let mut dir = RunDir::open(&d).unwrap();
        dir.stage("metrics.csv", b"old").unwrap();
        dir.stage("summary.json", b"old").unwrap();
        dir.commit(&["metrics.csv", "summary.json"], &[]).unwrap();
        dir.stage("metrics.csv", b"new").unwrap();
        // model.safetensors was never staged: the save fails before its record.
        assert!(dir.commit(&["metrics.csv", "model.safetensors", "summary.json"], &[]).is_err());
        drop(dir);
        assert_eq!((read(&d, "metrics.csv"), read(&d, "summary.json")), ("old".into(), "old".into()));
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn opening_finishes_a_recorded_save_and_discards_an_unrecorded_one() {
        let d = tmp();
        std::fs::write(d.join("summary.json"), "old").unwrap();
        std::fs::write(d.join("loss.png"), "old").unwrap();
        std::fs::write(d.join(".new.summary.json"), "new").unwrap();
        std::fs::write(d.join(JOURNAL), "rename summary.json\nremove loss.png\n").unwrap();
        drop(RunDir::open(&d).unwrap());
        assert_eq!(read(&d, "summary.json"), "new");
        assert!(!d.join("loss.png").exists());
        assert!(leftovers(&d).is_empty());
        // Staged, but no record: the save never happened.
        std::fs::write(d.join(".new.summary.json"), "newer").unwrap();
        std::fs::write(d.join(".model.safetensors.4194305.tmp"), "torn").unwrap();
        drop(RunDir::open(&d).unwrap());
        assert_eq!(read(&d, "summary.json"), "new");
        assert!(leftovers(&d).is_empty());
        // A record this version does not write is an error, not a guess.
        std::fs::write(d.join(JOURNAL), "rename ../../etc/passwd\n").unwrap();
        assert!(matches!(RunDir::open(&d), Err(RunDirError::Journal(_))));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn opening_removes_the_temporaries_of_dead_processes_only() {
        let d = tmp();
        // pid 1 always runs; 4194305 is past Linux's largest pid.
        let dead =
            [".model.safetensors.4194305.tmp", ".loss.png.4194305.tmp.png", ".loss.svg.4194305.tmp.svg"];
        let live = ".loss.png.1.tmp.png";
        for name in dead.iter().chain([&live]) {
            std::fs::write(d.join(name), "torn").unwrap();
        }
        std::fs::write(d.join("notes.tmp"), "a user's file").unwrap();
        drop(RunDir::open(&d).unwrap());
        for name in dead {
            assert!(!d.join(name).exists(), "{name} was left");
        }
        assert!(d.join("notes.tmp").exists());
        if Path::new("/proc/1").exists() {
            assert!(d.join(live).exists(), "a live process's picture was removed");
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_lock_is_held_until_dropped() {
        let d = tmp();
        let first = RunDir::open(&d).unwrap();
        assert!(matches!(RunDir::open(&d), Err(RunDirError::Busy(_))));
        drop(first);
        RunDir::open(&d).unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }
}
