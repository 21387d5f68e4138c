//! `mm_data::download::fetch` against a real HTTP server on 127.0.0.1 started by the test:
//! success, 404, a body cut short, a wrong checksum, a local path, no server, an unwritable
//! target. Each case checks what is (and is not) left on disk.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mm_data::download::{DownloadError, Fetched, Request, fetch, sha256_file};

const BODY: &[u8] = b"emma\nolivia\nava\n";
/// sha256 of BODY: `printf 'emma\nolivia\nava\n' | sha256sum`
const BODY_SHA: &str = "89e11e9e973f88599a3771682b8c66f346e1fca5328ac8ec2163454c09c2a9de";

/// A server answering `/ok` (the body), `/short` (a body cut short of its Content-Length) and
/// anything else with 404; it counts requests.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let response: Vec<u8> = match path.as_str() {
                "/ok" => [
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", BODY.len())
                        .as_bytes(),
                    BODY,
                ]
                .concat(),
                "/short" => [
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        BODY.len() + 100
                    )
                    .as_bytes(),
                    BODY,
                ]
                .concat(),
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, count)
}

/// A fresh empty directory.
fn dir() -> PathBuf {
    let d =
        std::env::temp_dir().join(format!("mm-download-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The names of the files in `d`.
fn files(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

fn request(source: String, target: &Path) -> Request {
    Request { source, target: target.to_path_buf(), sha256: BODY_SHA.into(), force: false }
}

#[test]
fn the_body_sha_is_right() {
    let d = dir();
    std::fs::write(d.join("b"), BODY).unwrap();
    assert_eq!(sha256_file(&d.join("b")).unwrap(), BODY_SHA);
}

#[test]
fn success_writes_the_file_and_reports_progress() {
    let (base, _) = serve();
    let d = dir();
    let target = d.join("names.txt");
    let mut last = None;
    let got = fetch(&request(format!("{base}/ok"), &target), |p| last = Some(p)).unwrap();
    assert_eq!(got, Fetched::Downloaded { bytes: BODY.len() as u64 });
    assert_eq!(std::fs::read(&target).unwrap(), BODY);
    assert_eq!(files(&d), ["names.txt"], "no temporary file left");
    let last = last.unwrap();
    assert_eq!((last.bytes, last.total), (BODY.len() as u64, Some(BODY.len() as u64)));
}

#[test]
fn a_present_file_is_not_fetched_again_unless_forced() {
    let (base, count) = serve();
    let d = dir();
    let target = d.join("names.txt");
    let req = request(format!("{base}/ok"), &target);
    fetch(&req, |_| {}).unwrap();
    let after_first = count.load(Ordering::SeqCst);
    assert_eq!(fetch(&req, |_| {}).unwrap(), Fetched::AlreadyPresent);
    assert_eq!(count.load(Ordering::SeqCst), after_first, "no request for a present file");
    let forced = Request { force: true, ..req };
    assert!(matches!(fetch(&forced, |_| {}).unwrap(), Fetched::Downloaded { .. }));
    assert_eq!(count.load(Ordering::SeqCst), after_first + 1);
}

#[test]
fn http_404_leaves_nothing() {
    let (base, _) = serve();
    let d = dir();
    let err = fetch(&request(format!("{base}/missing"), &d.join("names.txt")), |_| {}).unwrap_err();
    assert!(matches!(err, DownloadError::Status { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("answered HTTP 404"), "{err}");
    assert!(files(&d).is_empty());
}

#[test]
fn a_body_cut_short_leaves_nothing() {
    let (base, _) = serve();
    let d = dir();
    let err = fetch(&request(format!("{base}/short"), &d.join("names.txt")), |_| {}).unwrap_err();
    assert!(matches!(err, DownloadError::Interrupted { .. }), "{err:?}");
    assert!(files(&d).is_empty());
}

#[test]
fn a_wrong_checksum_leaves_nothing_and_shows_both_hashes() {
    let (base, _) = serve();
    let d = dir();
    let wrong = "0".repeat(64);
    let req = Request { sha256: wrong.clone(), ..request(format!("{base}/ok"), &d.join("names.txt")) };
    let err = fetch(&req, |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&wrong) && msg.contains(BODY_SHA), "{msg}");
    assert!(files(&d).is_empty());
}

#[test]
fn a_failed_download_leaves_an_existing_file_untouched() {
    let (base, _) = serve();
    let d = dir();
    let target = d.join("names.txt");
    std::fs::write(&target, b"old contents").unwrap();
    assert!(fetch(&request(format!("{base}/short"), &target), |_| {}).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"old contents");
    assert_eq!(files(&d), ["names.txt"]);
}

#[test]
fn a_local_path_is_a_source_too() {
    let d = dir();
    let src = d.join("copy.txt");
    std::fs::write(&src, BODY).unwrap();
    let target = d.join("names.txt");
    let got = fetch(&request(src.to_string_lossy().into(), &target), |_| {}).unwrap();
    assert_eq!(got, Fetched::Downloaded { bytes: BODY.len() as u64 });
    assert_eq!(std::fs::read(&target).unwrap(), BODY);
    let err =
        fetch(&request(d.join("nope.txt").to_string_lossy().into(), &d.join("x.txt")), |_| {}).unwrap_err();
    assert!(matches!(err, DownloadError::Source { .. }), "{err:?}");
    assert_eq!(files(&d), ["copy.txt", "names.txt"]);
}

#[test]
fn no_server_is_a_network_error() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir();
    let err =
        fetch(&request(format!("http://127.0.0.1:{port}/ok"), &d.join("names.txt")), |_| {}).unwrap_err();
    assert!(matches!(err, DownloadError::Network { .. }), "{err:?}");
    assert!(err.to_string().contains("--from PATH"), "{err}");
    assert!(files(&d).is_empty());
}

#[test]
fn an_unwritable_target_is_an_error() {
    let (base, _) = serve();
    let d = dir();
    let target = d.join("no/such/dir/names.txt");
    let err = fetch(&request(format!("{base}/ok"), &target), |_| {}).unwrap_err();
    // The target is named, not the temporary file beside it.
    assert!(matches!(&err, DownloadError::Target { path, .. } if *path == target), "{err:?}");
    assert!(files(&d).is_empty());
}

#[test]
fn a_malformed_sha256_is_refused() {
    let d = dir();
    let req = Request { sha256: "xyz".into(), ..request("/dev/null".into(), &d.join("n")) };
    assert!(matches!(fetch(&req, |_| {}), Err(DownloadError::BadSha256(_))));
}

/// A pipe as the source (`--from /dev/stdin`): its length reads as 0, which is not announced.
#[cfg(unix)]
#[test]
fn a_pipe_is_a_source() {
    let d = dir();
    let fifo = d.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo here: the pipe case did not run");
        return;
    }
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, BODY).unwrap())
    };
    let target = d.join("names.txt");
    let got = fetch(&request(fifo.to_string_lossy().into_owned(), &target), |_| {});
    writer.join().unwrap();
    assert!(matches!(got, Ok(Fetched::Downloaded { bytes: 16 })), "{got:?}");
    assert_eq!(std::fs::read(&target).unwrap(), BODY);
}
