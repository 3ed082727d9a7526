//! Issue 19: nothing brings the server down, nothing is lost. One regression test per item of
//! the issue: small requests that took `mesh serve` down or held it (items 1–5, over HTTP and
//! Flight SQL), and the everyday product changes the data path could not run (items 6–7, with
//! the CLI).

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use crate::security::{Wire, server_side};
use crate::{code, mesh, stderr, stdout};

fn ok(ws: &Path, args: &[&str]) -> String {
    let out = mesh(ws, args);
    assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn run(ws: &Path, dir: &str) -> serde_json::Value {
    let out = mesh(ws, &["run", dir, "--output", "json"]);
    crate::findings_json(&out)
}

/// Items 6 and 7. A product whose first run fails its contract (its output has the wrong type)
/// leaves no table behind, so the fixed transform publishes at once; then version 0.2.0 adds an
/// optional column — compatible, as the catalog says — and its run evolves the table, where it
/// used to fail with "Found extra fields".
#[test]
fn issue_19_compatible_versions_run_and_a_failed_first_run_leaves_no_table() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::two_domains(ws, None, &[]);
    let transform = ws.join("ecommerce/orders/transform.sql");
    let good = fs::read_to_string(&transform).unwrap();
    let wrong = good.replace(
        "CAST(amount AS DOUBLE) AS amount",
        "CAST(amount AS VARCHAR) AS amount",
    );
    assert_ne!(wrong, good);
    fs::write(&transform, &wrong).unwrap();
    ok(ws, &["publish", "ecommerce/orders"]);
    let failed = run(ws, "ecommerce/orders");
    assert_eq!(failed["published"], false, "{failed}");
    let table = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    assert!(
        !table.join("_delta_log").exists(),
        "a run that failed its contract created the table"
    );

    fs::write(&transform, &good).unwrap();
    let fixed = run(ws, "ecommerce/orders");
    assert_eq!(
        (fixed["published"].as_bool(), fixed["deltaVersion"].as_i64()),
        (Some(true), Some(1)),
        "{fixed}"
    );

    // 0.2.0: an optional column more, in the contract and the transform.
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap();
    let text = text.replacen("version: 0.1.0", "version: 0.2.0", 1).replace(
        "    quality:\n      - metric: rowCount",
        "      - name: channel\n        description: Where the order was placed.\n        logicalType: string\n        required: false\n    quality:\n      - metric: rowCount",
    );
    assert!(text.contains("name: channel"), "{text}");
    fs::write(&contract, text).unwrap();
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    let text = fs::read_to_string(&product)
        .unwrap()
        .replace("version: 0.1.0", "version: 0.2.0");
    fs::write(&product, text).unwrap();
    fs::write(
        &transform,
        good.replace(
            "CAST(updated_at AS TIMESTAMP) AS updated_at",
            "CAST(updated_at AS TIMESTAMP) AS updated_at,\n       'web' AS channel",
        ),
    )
    .unwrap();
    let published = ok(ws, &["publish", "ecommerce/orders"]);
    assert!(published.contains(" 0 breaking"), "{published}");
    let evolved = run(ws, "ecommerce/orders");
    assert_eq!(
        (
            evolved["published"].as_bool(),
            evolved["deltaVersion"].as_i64()
        ),
        (Some(true), Some(2)),
        "{evolved}"
    );
    let out = ok(
        ws,
        &[
            "query",
            "SELECT channel, COUNT(*) AS n FROM ecommerce.orders GROUP BY channel",
            "--output",
            "json",
        ],
    );
    assert!(out.contains("\"web\""), "{out}");
}

/// How many `access.read_denied` events the catalog holds.
fn denied_events(ws: &Path) -> usize {
    let out = ok(
        ws,
        &[
            "audit",
            "--kind",
            "access.read_denied",
            "--limit",
            "100000",
            "--output",
            "json",
        ],
    );
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// Items 1–5, against one running server: each request once took it down, pinned a core,
/// flooded the audit log or starved every other client. Each is refused with a problem that
/// names the limit (or answered), and the server keeps serving.
#[test]
fn issue_19_one_small_request_never_takes_the_server_down() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let (analyst, _) = crate::access::orders_with_email(ws);
    let server = crate::serve(
        ws,
        &[
            ("MESH_QUERY_BURST", "1000"),
            ("MESH_QUERIES_PER_MINUTE", "100000"),
            ("MESH_QUERY_MEMORY", "64"),
            ("MESH_RESULT_MEMORY", "64"),
            ("MESH_CALLS_PER_MINUTE", "120"),
            ("MESH_OPEN_PORTAL", "true"),
            ("MESH_HEADER_TIMEOUT", "2"),
            ("MESH_MAX_CONNECTIONS", "300"),
        ],
    );
    let wire = Wire::new(&server.url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    // GET `path` with `query`: (status, body), or the transport's error.
    let get = |path: &str, query: &[(&str, &str)], token: Option<&str>| {
        let mut request = client.get(format!("{}{path}", server.url)).query(query);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        runtime.block_on(async {
            let answer = request.send().await.map_err(|e| e.to_string())?;
            let status = answer.status().as_u16();
            Ok::<_, String>((status, answer.text().await.unwrap_or_default()))
        })
    };
    let alive = |after: &str| {
        let (status, body) = wire.http(&analyst, "SELECT 1 AS one");
        assert_eq!(status, 200, "the server is gone after {after}: {body}");
    };
    let problem = |status: u16, body: &str, names: &str, what: &str| {
        assert!((400..500).contains(&status), "{what}: {status} {body}");
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["status"], status, "{what}: {body}");
        assert!(
            doc["detail"].as_str().unwrap_or_default().contains(names),
            "{what}: the problem does not name {names}: {body}"
        );
    };

    // 1. `SELECT 1+1+...+1`, 2,000 terms (4 KB): refused before planning.
    let sql = format!("SELECT 1{} AS n", "+1".repeat(2_000));
    let (status, body) = wire.http(&analyst, &sql);
    problem(status, &body, "operators", "2,000 additions");
    let e = wire.flight(&analyst, &sql).expect_err("2,000 additions");
    assert!(
        e.contains("operators") && !server_side(&e),
        "Flight SQL: {e}"
    );
    alive("2,000 additions");

    // 2. One 2,300-letter word in a search: refused (the API, and the open portal, anonymous);
    //    a long word within the limit is searched.
    let word = "a".repeat(2_300);
    let search = |q: &str, token: Option<&str>| get("/api/v1/search", &[("q", q)], token).unwrap();
    let (status, body) = search(&word, Some(&analyst));
    problem(status, &body, "characters", "a 2,300-letter word");
    let (status, _) = get("/search", &[("q", word.as_str())], None).unwrap();
    assert!((400..500).contains(&status), "the portal: {status}");
    let words = (0..40)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (status, body) = search(&words, Some(&analyst));
    problem(status, &body, "words", "40 words");
    let (status, body) = search(&"b".repeat(900), Some(&analyst));
    assert_eq!(status, 200, "{body}");
    alive("long searches");

    // 3. Memory: an aggregate of big strings is stopped at the query's memory (or its result
    //    at the result limit), and a result too big for Arrow's 32-bit offsets is an error, not a
    //    dropped connection.
    for (what, sql) in [
        (
            "array_agg of big strings",
            "SELECT array_agg(repeat('x', 100000)) AS a FROM generate_series(1, 20000)",
        ),
        (
            "a sort of big strings",
            "SELECT repeat('x', 10000) || CAST(value AS VARCHAR) AS a FROM generate_series(1, 50000) ORDER BY a",
        ),
        (
            "3 GB of strings in one batch",
            "SELECT repeat('x', 1000000) AS a FROM generate_series(1, 3000)",
        ),
    ] {
        let (status, body) = wire.http(&analyst, sql);
        assert!(
            status >= 400,
            "{what}: {status} {}",
            &body[..body.len().min(300)]
        );
        let doc: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{what}: not a problem: {}", &body[..body.len().min(300)]));
        assert_eq!(doc["status"], status, "{what}: {body}");
        if status >= 500 {
            assert!(doc["error_id"].is_string(), "{what}: {body}");
        }
        alive(what);
        let e = wire.flight(&analyst, sql).expect_err(what);
        assert!(!e.contains("transport error"), "Flight SQL {what}: {e}");
        alive(what);
    }

    // 4. A statement naming 2,000 tables it may not read is one refusal, not 2,000 events
    //    with the statement in each; and Flight SQL calls are rate-limited like queries.
    let before = denied_events(ws);
    let sql = format!(
        "SELECT 1 AS n FROM {}",
        (0..200)
            .map(|i| format!("ecommerce.secret_{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (status, _) = wire.http(&analyst, &sql);
    assert_eq!(status, 404);
    let written = denied_events(ws) - before;
    assert!(
        (1..=10).contains(&written),
        "one refused statement wrote {written} events"
    );
    let mut limited = None;
    for i in 0..60 {
        if let Err(e) = wire.flight(&analyst, "SELECT * FROM ecommerce.nope")
            && e.contains("calls a minute")
        {
            limited = Some(i);
            break;
        }
    }
    assert!(
        limited.is_some(),
        "60 Flight calls in a row were never limited"
    );

    // 5. 1,100 connections that never finish their headers: past the cap they are refused at
    //    once, the rest are closed after the header timeout, and /health answers again.
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut hanging = Vec::new();
    for _ in 0..1_100 {
        let mut c = std::net::TcpStream::connect(&address).unwrap();
        let _ = c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
        hanging.push(c);
    }
    let mut healthy = false;
    for _ in 0..60 {
        if let Ok((200, _)) = get("/health", &[], None) {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(healthy, "/health never answered while 1,100 requests hung");
    let first = &mut hanging[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let closed = first.read_to_end(&mut buf);
    assert!(
        closed.is_ok(),
        "a half-sent request was never disconnected: {closed:?}"
    );
    drop(hanging);
    alive("1,100 half-sent requests");
}

/// The data files in a table's folder that no version of its log names.
fn unnamed_files(table: &Path) -> Vec<String> {
    let mut named = std::collections::HashSet::new();
    for entry in fs::read_dir(table.join("_delta_log")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        for line in fs::read_to_string(entry.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for kind in ["add", "remove"] {
                if let Some(p) = v[kind]["path"].as_str() {
                    named.insert(p.to_owned());
                }
            }
        }
    }
    fs::read_dir(table)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet") && !named.contains(n))
        .collect()
}

/// The runs of `ecommerce.orders`, newest first.
fn runs(ws: &Path) -> Vec<serde_json::Value> {
    let out = ok(ws, &["runs", "ecommerce.orders", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["runs"].as_array().unwrap().clone()
}

/// Item 8. A run heartbeats while it works (a run on another host is no longer taken for dead
/// after ten minutes of work); a run killed after its commit is settled with its rows and a
/// note saying so; and the files a run killed before its commit wrote are removed by the next
/// successful run, where no vacuum ever removed them.
#[test]
fn issue_19_runs_heartbeat_settle_with_rows_and_leave_no_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::two_domains(ws, None, &[]);
    ok(ws, &["publish", "ecommerce/orders"]);
    ok(ws, &["run", "ecommerce/orders"]);
    let table = ws.join(".mesh/data/ecommerce/orders/orders/v0");

    // Heartbeats: a run paused after writing its files says it is alive meanwhile.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["run", "ecommerce/orders"])
        .current_dir(ws)
        .env("NO_COLOR", "1")
        .env("MESH_PAUSE", "after-stage")
        .env("MESH_PAUSE_SECONDS", "4")
        .env("MESH_RUN_HEARTBEAT", "0.5")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut beats = std::collections::BTreeSet::new();
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let latest = runs(ws).remove(0);
        if latest["state"] == "running" {
            beats.insert(latest["heartbeat_at"].as_str().unwrap().to_owned());
        }
        if beats.len() >= 3 {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(
        beats.len() >= 3,
        "the running run's heartbeat never moved: {beats:?}"
    );

    // Killed after its commit: the next run settles it, with the rows the commit wrote.
    let killed = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["run", "ecommerce/orders"])
        .current_dir(ws)
        .env("MESH_FAILPOINT", "after-commit")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let victim = runs(ws).remove(0);
    ok(ws, &["run", "ecommerce/orders"]);
    let settled = runs(ws)
        .into_iter()
        .find(|r| r["id"] == victim["id"])
        .unwrap();
    assert_eq!(settled["state"], "succeeded", "{settled}");
    assert_eq!(settled["rows_out"], 10, "{settled}");
    assert!(
        settled["note"]
            .as_str()
            .is_some_and(|n| n.contains("settled")),
        "{settled}"
    );

    // Killed after writing its files, before committing them: orphans, until the next run.
    let killed = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["run", "ecommerce/orders"])
        .current_dir(ws)
        .env("MESH_FAILPOINT", "after-stage")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    assert!(
        !unnamed_files(&table).is_empty(),
        "the killed run wrote files"
    );
    let victim = runs(ws).remove(0);
    ok(ws, &["run", "ecommerce/orders"]);
    assert_eq!(unnamed_files(&table), Vec::<String>::new());
    let settled = runs(ws)
        .into_iter()
        .find(|r| r["id"] == victim["id"])
        .unwrap();
    assert_eq!(settled["state"], "failed", "{settled}");
    assert!(settled["note"].as_str().is_some(), "{settled}");
}

/// Item 8, the last part: two servers on one catalog enforce one rate limit, not one each.
#[test]
fn issue_19_two_servers_share_one_rate_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    let (analyst, _) = crate::access::orders_with_email(ws);
    let limits = [("MESH_QUERY_BURST", "3"), ("MESH_QUERIES_PER_MINUTE", "1")];
    let first = crate::serve(ws, &limits);
    let second = crate::serve(ws, &limits);
    let (a, b) = (Wire::new(&first.url), Wire::new(&second.url));
    let statuses: Vec<u16> = [&a, &b, &a, &b]
        .iter()
        .map(|w| w.http(&analyst, "SELECT 1 AS one").0)
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "a burst of 3 across two servers"
    );
    let e = b
        .flight(&analyst, "SELECT 1 AS one")
        .expect_err("Flight SQL on the other server");
    assert!(e.contains("queries a minute"), "{e}");
}

/// Unmounts a test file system when the test ends, however it ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system `dir` is on, to the last block.
fn fill(dir: &Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    for chunk in [1 << 20, 4 << 10, 512, 1] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).is_ok() {}
    }
    let _ = file.sync_all();
    filler
}

/// Faults survived: a full disk under the catalog (SQLite) and the lake refuses the publish and
/// the run with an error that says so — no panic, no new version half-written, the catalog
/// still readable — and once there is space again, both go through.
#[test]
fn issue_19_a_full_disk_refuses_writes_cleanly_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    fs::create_dir(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&disk)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        crate::notice("notice: cannot mount a tmpfs (needs root); skipping the full-disk test");
        return;
    }
    let _mounted = Mounted(disk.clone());
    let ws = disk.join("ws");
    fs::create_dir(&ws).unwrap();
    let ws = ws.as_path();
    crate::two_domains(ws, None, &[]);
    ok(ws, &["publish", "ecommerce/orders"]);
    assert_eq!(run(ws, "ecommerce/orders")["published"], true);
    let table = ws.join(".mesh/data/ecommerce/orders/orders/v0");
    let versions = || {
        fs::read_dir(table.join("_delta_log"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    };
    let before = versions();
    let product = ws.join("ecommerce/orders/product.odps.yaml");
    let bump = |to: &str| {
        let text = fs::read_to_string(&product).unwrap();
        let text = regex::Regex::new(r"(?m)^version: .*$")
            .unwrap()
            .replace(&text, format!("version: {to}"));
        fs::write(&product, text.as_ref()).unwrap();
    };

    let filler = fill(&disk);
    bump("0.1.1");
    let out = mesh(ws, &["publish", "ecommerce/orders"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(code(&out), 0, "a publish on a full disk: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        said.contains("full") || said.contains("space"),
        "the error does not say the disk is full: {said}"
    );
    let out = mesh(ws, &["run", "ecommerce/orders"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(code(&out), 0, "a run on a full disk: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(versions(), before, "no new Delta version on a full disk");
    // SQLite cannot even open the catalog for reading on a disk with no block left (it
    // creates its shared-memory file on open): that too says why.
    let out = mesh(ws, &["runs", "ecommerce.orders"]);
    if code(&out) != 0 {
        assert!(stderr(&out).contains("full"), "{}", stderr(&out));
    }

    // Space again: both go through.
    fs::remove_file(filler).unwrap();
    ok(ws, &["publish", "ecommerce/orders"]);
    let again = run(ws, "ecommerce/orders");
    assert_eq!(again["published"], true, "{again}");
    assert!(versions() > before);
    assert_eq!(unnamed_files(&table), Vec::<String>::new());
}

/// The lake alone full (its own file system; the catalog has space): the run fails with the
/// storage's error and is recorded as failed, readers keep the published snapshot, no version
/// is half-written, and the next run after space is freed publishes and sweeps what the failed
/// one left.
#[test]
fn issue_19_a_full_lake_fails_the_run_and_readers_keep_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::two_domains(ws, None, &[]);
    let lake = ws.join(".mesh/data");
    fs::create_dir_all(&lake).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&lake)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        crate::notice("notice: cannot mount a tmpfs (needs root); skipping the full-lake test");
        return;
    }
    let _mounted = Mounted(lake.clone());
    ok(ws, &["publish", "ecommerce/orders"]);
    assert_eq!(run(ws, "ecommerce/orders")["published"], true);
    let count = || {
        let out = ok(
            ws,
            &[
                "query",
                "SELECT COUNT(*) AS n FROM ecommerce.orders",
                "--output",
                "json",
            ],
        );
        out.contains("10")
    };
    assert!(count());

    let filler = fill(&lake);
    let out = mesh(ws, &["run", "ecommerce/orders", "--output", "json"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    // A clean failure (the CLI's error exit, not a panic's 101) that names the cause.
    assert_eq!(code(&out), 2, "a run on a full lake: {said}");
    assert!(said.contains("No space left on device"), "{said}");
    let latest = runs(ws).remove(0);
    assert_eq!(latest["state"], "failed", "{latest}");
    assert!(count(), "readers keep the published snapshot");

    fs::remove_file(filler).unwrap();
    let again = run(ws, "ecommerce/orders");
    assert_eq!(
        (again["published"].as_bool(), again["deltaVersion"].as_i64()),
        (Some(true), Some(2)),
        "{again}"
    );
    assert_eq!(
        unnamed_files(&lake.join("ecommerce/orders/orders/v0")),
        Vec::<String>::new()
    );
}

/// A fault to inject: requests with this method whose path holds this text are refused.
#[derive(Clone)]
struct Fault {
    method: &'static str,
    path: &'static str,
}

/// An S3 proxy in front of `upstream` (moto) that refuses, with S3's `AccessDenied` (an error
/// no client retries), the requests the current fault matches, and counts them; one request
/// per connection.
struct FaultyS3 {
    url: String,
    fault: std::sync::Arc<std::sync::Mutex<Option<Fault>>>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultyS3 {
    fn start(upstream: &str) -> FaultyS3 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let fault: std::sync::Arc<std::sync::Mutex<Option<Fault>>> = Default::default();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, r) = (fault.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (f, r, upstream) = (f.clone(), r.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = proxy(client, &upstream, &f, &r);
                });
            }
        });
        FaultyS3 {
            url,
            fault,
            refused,
        }
    }

    fn set(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn proxy(
    mut client: std::net::TcpStream,
    upstream: &str,
    fault: &std::sync::Mutex<Option<Fault>>,
    refused: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    // The request head, then its body (Content-Length).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let mut parts = first.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let refuse = fault
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|f| f.method == method && path.contains(f.path));
    if refuse {
        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>injected fault</Message></Error>";
        write!(
            client,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        )?;
        return Ok(());
    }
    let mut server = std::net::TcpStream::connect(upstream)?;
    let head: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end_matches("\r\n").to_owned() + "\r\nConnection: close\r\n\r\n";
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

/// Faults survived: S3 refusing the run's writes — its data files, or its Delta commit — fails
/// the run with the storage's error; no version is visible, readers keep the published
/// snapshot; and once S3 is healthy the next run publishes.
#[test]
fn issue_19_s3_errors_mid_run_leave_no_visible_output() {
    let Some(endpoint) = crate::s3::endpoint() else {
        return;
    };
    let s3 = FaultyS3::start(&endpoint);
    let bucket = format!("mesh-faults-{}", std::process::id());
    crate::s3::create_bucket(&endpoint, &bucket);
    let env = crate::s3::env(&s3.url);
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    crate::two_domains(ws, None, &env);
    let toml = fs::read_to_string(ws.join("mesh.toml")).unwrap().replace(
        "url = \"file://.mesh/data\"",
        &format!("url = \"s3://{bucket}/data\""),
    );
    assert!(toml.contains("s3://"), "{toml}");
    fs::write(ws.join("mesh.toml"), toml).unwrap();
    let run_with = |fault: Option<Fault>| {
        s3.set(fault);
        let out = crate::mesh_with_env(ws, &["run", "ecommerce/orders", "--output", "json"], &env);
        s3.set(None);
        out
    };
    let publish = crate::mesh_with_env(ws, &["publish", "ecommerce/orders"], &env);
    assert_eq!(code(&publish), 0, "{}", stderr(&publish));
    let first = run_with(None);
    assert_eq!(code(&first), 0, "{}{}", stdout(&first), stderr(&first));
    let snapshot = || {
        let out = crate::mesh_with_env(ws, &["runs", "ecommerce.orders", "--output", "json"], &env);
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        doc["snapshots"][0]["delta_version"].as_i64()
    };
    assert_eq!(snapshot(), Some(1));
    for (what, fault) in [
        (
            "data files",
            Fault {
                method: "PUT",
                path: ".parquet",
            },
        ),
        (
            "the Delta commit",
            Fault {
                method: "PUT",
                path: "_delta_log/",
            },
        ),
    ] {
        let before = s3.refused.load(std::sync::atomic::Ordering::SeqCst);
        let out = run_with(Some(fault));
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            s3.refused.load(std::sync::atomic::Ordering::SeqCst) > before,
            "{what}: the fault was never hit: {said}"
        );
        assert_eq!(code(&out), 2, "{what}: {said}");
        assert!(
            said.contains("AccessDenied") || said.contains("403"),
            "{what}: {said}"
        );
        assert_eq!(
            snapshot(),
            Some(1),
            "{what}: readers keep the published snapshot"
        );
        let latest = runs(ws).remove(0);
        assert_eq!(latest["state"], "failed", "{what}: {latest}");
    }
    let healthy = run_with(None);
    assert_eq!(
        code(&healthy),
        0,
        "{}{}",
        stdout(&healthy),
        stderr(&healthy)
    );
    assert_eq!(
        snapshot(),
        Some(2),
        "the next version after the failed ones"
    );
}
