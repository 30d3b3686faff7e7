//! Fetching the pinned firmware: a local server on 127.0.0.1 plays every network failure.

use crate::harness::*;
use crate::server::{Route, Server};
use std::sync::Arc;

fn good_bytes() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(fixture_zip("rpi4", None)).unwrap())
}

/// `pi-burn sdcard --image NAME` taking the firmware from the manifest (no --firmware-zip).
fn sdcard_from(
    t: &TestDir,
    manifest: &std::path::Path,
    image: &str,
    extra: &[&str],
) -> std::process::Output {
    t.pi_burn()
        .args([
            "--json",
            "sdcard",
            "--retries",
            "2",
            "--timeout",
            "5",
            "--image",
        ])
        .arg(t.path(image))
        .arg("--manifest")
        .arg(manifest)
        .args(extra)
        .output()
        .unwrap()
}

fn source_of(o: &std::process::Output) -> String {
    let j: serde_json::Value =
        serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)));
    j["firmware"]["source"].as_str().unwrap().to_string()
}

fn cold_run_downloads_verifies_caches_and_builds_then_warm_run_needs_no_network() {
    let t = TestDir::new();
    let server = Server::start(vec![("/fw.zip", Route::Bytes(good_bytes()))]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let o = sdcard_from(&t, &m, "cold.img", &[]);
    assert_success(&o);
    assert_eq!(source_of(&o), "network");
    assert_eq!(t.cached_blobs().len(), 1);
    assert_eq!(server.requests().len(), 1);
    server.stop();

    let o = sdcard_from(&t, &m, "warm.img", &[]);
    assert_success(&o);
    assert_eq!(source_of(&o), "cache");
    assert_eq!(
        sha256_file(&t.path("cold.img")),
        sha256_file(&t.path("warm.img"))
    );
    let o = sdcard_from(&t, &m, "offline.img", &["--offline"]);
    assert_success(&o);

    // The listing knows it is cached.
    let list = run_ok(t.pi_burn().args(["firmware", "list", "--manifest"]).arg(&m));
    let row = list
        .lines()
        .find(|l| l.starts_with("rpi4") && l.contains("v9.0"))
        .unwrap();
    assert!(row.contains("yes"), "{list}");

    // A cached zip that no longer verifies is not used, and offline it is named as corrupt.
    let blob = t.cached_blobs()[0].clone();
    std::fs::write(&blob, b"corrupt").unwrap();
    let o = sdcard_from(&t, &m, "x.img", &["--offline"]);
    assert_fails_with(&o, 1, &["is corrupt", "--offline"]);
}

fn a_corrupt_cached_zip_is_replaced_by_the_next_verified_download() {
    // Regression (issue 14): the corrupt blob stayed and every run downloaded again.
    let t = TestDir::new();
    let server = Server::start(vec![("/fw.zip", Route::Bytes(good_bytes()))]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    assert_success(&sdcard_from(&t, &m, "a.img", &[]));
    let blob = t.cached_blobs()[0].clone();
    std::fs::write(&blob, b"corrupt").unwrap();
    let o = sdcard_from(&t, &m, "b.img", &[]);
    assert_success(&o);
    assert!(stderr(&o).contains("no longer verifies"), "{}", stderr(&o));
    assert_eq!(sha256_file(&blob), sha256_file(&fixture_zip("rpi4", None)));
    server.stop();
    let o = sdcard_from(&t, &m, "c.img", &["--offline"]);
    assert_success(&o);
    assert_eq!(source_of(&o), "cache");
}

fn a_206_that_does_not_continue_the_partial_download_starts_over() {
    // Regression (issue 14): the whole body was appended to the partial one.
    let t = TestDir::new();
    let server = Server::start(vec![(
        "/fw.zip",
        Route::DropFirst(Box::new(Route::WrongRange(good_bytes()))),
    )]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let o = sdcard_from(&t, &m, "d.img", &[]);
    assert_success(&o);
    assert!(stderr(&o).contains("Content-Range"), "{}", stderr(&o));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "dropped, wrong 206, then whole: {reqs:?}");
    assert_eq!(reqs[2].range, None);
    assert_eq!(
        sha256_file(&t.cached_blobs()[0]),
        sha256_file(&fixture_zip("rpi4", None))
    );
}

fn follows_a_redirect_chain() {
    let t = TestDir::new();
    let server = Server::start(vec![
        ("/a", Route::Redirect("/b".into())),
        ("/b", Route::Redirect("/fw.zip".into())),
        ("/fw.zip", Route::Bytes(good_bytes())),
    ]);
    let m = t.manifest_with_url(&server.url("/a"));
    assert_success(&sdcard_from(&t, &m, "r.img", &[]));
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/a", "/b", "/fw.zip"]);
}

fn a_404_names_the_url_and_status_and_is_not_retried() {
    let t = TestDir::new();
    let server = Server::start(vec![]);
    let url = server.url("/gone.zip");
    let m = t.manifest_with_url(&url);
    let o = sdcard_from(&t, &m, "n.img", &[]);
    assert_fails_with(&o, 1, &[&url, "404"]);
    assert_eq!(server.requests().len(), 1, "4xx is not retried");
    assert!(!t.path("n.img").exists());
    assert!(t.cached_blobs().is_empty());
}

fn a_dropped_connection_is_resumed_with_a_range_request() {
    let t = TestDir::new();
    let data = good_bytes();
    let server = Server::start(vec![(
        "/fw.zip",
        Route::DropFirst(Box::new(Route::Bytes(data.clone()))),
    )]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let o = sdcard_from(&t, &m, "d.img", &[]);
    assert_success(&o);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={}-", data.len() / 2).as_str())
    );
    assert!(stderr(&o).contains("retrying"), "{}", stderr(&o));
}

fn a_server_without_range_support_restarts_the_download() {
    let t = TestDir::new();
    let server = Server::start(vec![(
        "/fw.zip",
        Route::DropFirst(Box::new(Route::NoRange(good_bytes()))),
    )]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let o = sdcard_from(&t, &m, "d.img", &[]);
    assert_success(&o);
    assert_eq!(source_of(&o), "network");
    assert_eq!(server.requests().len(), 2);
}

fn transient_5xx_is_retried() {
    let t = TestDir::new();
    let server = Server::start(vec![(
        "/fw.zip",
        Route::FailFirst(503, Box::new(Route::Bytes(good_bytes()))),
    )]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    assert_success(&sdcard_from(&t, &m, "f.img", &[]));
    assert_eq!(server.requests().len(), 2);
}

fn wrong_bytes_are_refused_and_nothing_is_cached() {
    let t = TestDir::new();
    let wrong = Arc::new(std::fs::read(fixture_zip("rpi4", Some("exec"))).unwrap());
    let server = Server::start(vec![("/fw.zip", Route::Bytes(wrong))]);
    let url = server.url("/fw.zip");
    let m = t.manifest_with_url(&url);
    let o = sdcard_from(&t, &m, "w.img", &[]);
    assert_fails_with(
        &o,
        1,
        &[
            "hash mismatch",
            &url,
            "expected sha256-Vc4qBLD2",
            "computed",
        ],
    );
    assert!(t.cached_blobs().is_empty());
    let partial = std::fs::read_dir(t.path("cache/partial"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".lock")
        })
        .count();
    assert_eq!(partial, 0, "no partial download is left to resume");
    assert!(!t.path("w.img").exists());
}

fn a_stalled_server_hits_the_read_timeout() {
    let t = TestDir::new();
    let server = Server::start(vec![("/fw.zip", Route::Stall(good_bytes()))]);
    let url = server.url("/fw.zip");
    let m = t.manifest_with_url(&url);
    let start = std::time::Instant::now();
    let o = t
        .pi_burn()
        .args(["sdcard", "--timeout", "1", "--retries", "1", "--image"])
        .arg(t.path("s.img"))
        .arg("--manifest")
        .arg(&m)
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &[&url, "after 2 attempts"]);
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    assert!(!t.path("s.img").exists());
}

fn offline_with_an_empty_cache_names_what_to_fetch() {
    let t = TestDir::new();
    let o = t
        .pi_burn()
        .args(["sdcard", "--offline", "--manifest", MANIFEST, "--image"])
        .arg(t.path("o.img"))
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        1,
        &[
            "rpi4 v9.0 is not in the cache",
            "pi-burn firmware fetch --board rpi4 --firmware v9.0",
        ],
    );
}

fn firmware_fetch_and_url_pinned_by_the_user() {
    let t = TestDir::new();
    let data = good_bytes();
    let server = Server::start(vec![
        ("/fw.zip", Route::Bytes(data.clone())),
        ("/mirror/custom.zip", Route::Bytes(data.clone())),
    ]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let out = run_ok(
        t.pi_burn()
            .args(["firmware", "fetch", "--manifest"])
            .arg(&m),
    );
    assert!(out.contains("downloaded, verified and cached"), "{out}");
    let out = run_ok(
        t.pi_burn()
            .args(["firmware", "fetch", "--manifest"])
            .arg(&m),
    );
    assert!(out.contains("already in the cache"), "{out}");

    let sha = sha256_file(&fixture_zip("rpi4", None));
    let o = t
        .pi_burn()
        .args(["--json", "sdcard", "--manifest"])
        .arg(&m)
        .arg("--image")
        .arg(t.path("u.img"))
        .args([
            "--firmware-url",
            &server.url("/mirror/custom.zip"),
            "--sha256",
            &sha,
        ])
        .output()
        .unwrap();
    assert_success(&o);
    // --firmware-url without --sha256 is a usage error; plain http elsewhere is refused.
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            "--image",
            "x.img",
            "--firmware-url",
            "http://127.0.0.1:1/x.zip",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            "--image",
            "x.img",
            "--firmware-url",
            "http://example.com/x.zip",
            "--sha256",
            &sha,
        ])
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &["refusing plain http://"]);
}

fn concurrent_runs_share_the_cache_without_corrupting_it() {
    let t = TestDir::new();
    let server = Server::start(vec![("/fw.zip", Route::Bytes(good_bytes()))]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let kids: Vec<_> = (0..3)
        .map(|_| {
            t.pi_burn()
                .args(["firmware", "fetch", "--manifest"])
                .arg(&m)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert_success(&o);
    }
    let blobs = t.cached_blobs();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    // One download: the runs that waited for the lock found the zip in the cache (issue 14).
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    // No lock or partial files pile up.
    let partial: Vec<_> = std::fs::read_dir(t.path("cache/partial"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(partial.is_empty(), "{partial:?}");
    assert_eq!(
        sha256_file(&blobs[0]),
        sha256_file(&fixture_zip("rpi4", None))
    );
    // And the cached zip is whole: a build from it, offline, verifies.
    let o = sdcard_from(&t, &m, "c.img", &["--offline"]);
    assert_success(&o);
}

fn a_zip_fetched_by_hand_is_imported_and_later_runs_work_offline() {
    // Issue 12: `firmware fetch --firmware-zip FILE` said "cached" and cached nothing.
    let t = TestDir::new();
    let o = t.fetch_fixture();
    assert_success(&o);
    assert!(
        stdout(&o).contains("imported into the cache"),
        "{}",
        stdout(&o)
    );
    assert_eq!(t.cached_blobs().len(), 1);
    let o = t
        .pi_burn()
        .args(["sdcard", "--manifest", MANIFEST, "--offline", "--image"])
        .arg(t.path("off.img"))
        .output()
        .unwrap();
    assert_success(&o);
}

fn with_no_network_a_first_run_fails_at_once_and_names_the_ways_on() {
    // A machine without a network: a new, empty network namespace (no interfaces, so no DNS
    // server either). Nothing leaves this machine.
    if !is_root() || !have_tool("unshare") {
        return;
    }
    let t = TestDir::new();
    let mut c = tool("unshare");
    c.arg("-n")
        .arg(env!("CARGO_BIN_EXE_pi-burn"))
        .args(["sdcard", "--image"])
        .arg(t.path("n.img"))
        .env("PI_BURN_CACHE_DIR", t.path("cache"))
        .current_dir(t.path(""));
    let start = std::time::Instant::now();
    let o = c.output().unwrap();
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    assert_fails_with(
        &o,
        1,
        &[
            "cannot resolve github.com",
            "--firmware-zip FILE",
            "pi-burn firmware fetch --board rpi4 --firmware v1.50",
            "--firmware-url",
        ],
    );
    let err = stderr(&o);
    assert!(
        !err.contains("retrying"),
        "a name that does not resolve is not retried:\n{err}"
    );
    let last = err.lines().last().unwrap();
    assert_eq!(
        last.matches("RPi4_UEFI_Firmware_v1.50.zip").count(),
        1,
        "the URL once: {last}"
    );
    assert!(!t.path("n.img").exists());
}

fn max_time_bounds_the_whole_download() {
    let t = TestDir::new();
    // 503 forever, --retries 2 (from sdcard_from): the backoff of 0.5 s, then 1 s, would run
    // past --max-time 1, so the second failure is the last.
    let server = Server::start(vec![("/fw.zip", Route::Status(503))]);
    let m = t.manifest_with_url(&server.url("/fw.zip"));
    let o = sdcard_from(&t, &m, "m.img", &["--max-time", "1"]);
    assert_fails_with(&o, 1, &["--max-time 1", "after 2 attempts", "HTTP 503"]);
    assert_eq!(server.requests().len(), 2);
    // Each attempt says what it waits on.
    let err = stderr(&o);
    assert!(
        err.contains("connecting to 127.0.0.1 (attempt 1 of 3; up to 5 s per wait, 1 s in all)")
            && err.contains("(attempt 2 of 3;"),
        "{err}"
    );
}

// This module's tests, for the runner in main.rs.
crate::tests![
    cold_run_downloads_verifies_caches_and_builds_then_warm_run_needs_no_network,
    a_corrupt_cached_zip_is_replaced_by_the_next_verified_download,
    a_206_that_does_not_continue_the_partial_download_starts_over,
    follows_a_redirect_chain,
    a_404_names_the_url_and_status_and_is_not_retried,
    a_dropped_connection_is_resumed_with_a_range_request,
    a_server_without_range_support_restarts_the_download,
    transient_5xx_is_retried,
    wrong_bytes_are_refused_and_nothing_is_cached,
    a_stalled_server_hits_the_read_timeout,
    offline_with_an_empty_cache_names_what_to_fetch,
    firmware_fetch_and_url_pinned_by_the_user,
    concurrent_runs_share_the_cache_without_corrupting_it,
    a_zip_fetched_by_hand_is_imported_and_later_runs_work_offline,
    with_no_network_a_first_run_fails_at_once_and_names_the_ways_on,
    max_time_bounds_the_whole_download,
];
