//! Integration tests of the `mesh` binary (one test binary per crate, see STYLE.md §3): they run
//! the real executable, as users and CI do.

mod access;
mod browser;
mod catalog;
mod ci;
mod contract_tests;
mod databases;
mod demo;
mod docs;
mod gate;
mod golden;
mod idp;
mod init;
mod interop;
mod lint;
mod monitoring;
mod new;
mod pg;
mod plan;
mod policy;
mod resilience;
mod run;
mod s3;
mod schedule;
mod security;
mod sla;
// The conformance vectors in ../shared (skip, or fail under CI=true), as every crate reads them.
use mesh_testkit::vectors;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `mesh ARGS` in `dir` without colours.
pub(crate) fn mesh(dir: &Path, args: &[&str]) -> Output {
    mesh_with_env(dir, args, &[])
}

/// Runs `mesh ARGS` in `dir` without colours, with extra environment variables.
pub(crate) fn mesh_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied())
        .output()
        .expect("the mesh binary runs")
}

pub(crate) use mesh_testkit::notice;

/// A workspace in `dir` with the source product `ecommerce.orders` and, when given, a product
/// `(name, type)` of the analytics domain reading it: scaffolded by `mesh new`, not published.
pub(crate) fn two_domains(dir: &Path, reader: Option<(&str, &str)>, env: &[(&str, &str)]) {
    let run = |args: &[&str]| {
        let out = mesh_with_env(dir, args, env);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
    };
    run(&["init"]);
    run(&[
        "new",
        "product",
        "orders",
        "--domain",
        "ecommerce",
        "--owner",
        "ecommerce-orders",
    ]);
    if let Some((name, kind)) = reader {
        run(&[
            "new",
            "product",
            name,
            "--domain",
            "analytics",
            "--type",
            kind,
            "--owner",
            "analytics-team",
            "--input",
            "ecommerce.orders",
        ]);
    }
}

/// `python3` with ADBC's Flight SQL driver and pyarrow.
pub(crate) fn python_adbc() -> Option<&'static str> {
    mesh_testkit::python(
        "adbc_driver_flightsql.dbapi, pyarrow",
        "adbc-driver-flightsql pyarrow",
        "the ADBC part",
    )
}

/// `python3` with `prometheus_client` (Prometheus' Python client, whose parser reads the text
/// format).
pub(crate) fn python_prometheus() -> Option<&'static str> {
    mesh_testkit::python(
        "prometheus_client.parser",
        "prometheus_client",
        "the Prometheus parser part",
    )
}

/// Lets the pipeline of `consumer` (`domain.product`) read `port` (`domain.product.port`), as
/// two people would: asked for by one (`ana`) and approved by another (`olga`) — two local
/// users of the catalog file, or, through `server` = (url, asker's token, approver's token),
/// two tokens.
pub(crate) fn grant_input(
    dir: &Path,
    consumer: &str,
    port: &str,
    env: &[(&str, &str)],
    server: Option<(&str, &str, &str)>,
) {
    let as_user = |user: &str, args: &[&str]| {
        let mut all = args.to_vec();
        let mut env = env.to_vec();
        match server {
            Some((url, asker, approver)) => {
                let token = if user == "ana" { asker } else { approver };
                all.extend(["--server", url, "--token", token]);
            }
            None => env.push(("USER", user)),
        }
        let out = mesh_with_env(dir, &all, &env);
        assert_eq!(code(&out), 0, "{all:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let request = as_user(
        "ana",
        &[
            "access",
            "request",
            port,
            "--for",
            consumer,
            "--purpose",
            "The product's pipeline reads it every day.",
            "--output",
            "json",
        ],
    );
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    as_user(
        "olga",
        &["access", "approve", request["id"].as_str().unwrap()],
    );
}

/// A local HTTP endpoint that keeps the bodies POSTed to it.
pub(crate) struct Receiver {
    pub(crate) url: String,
    /// The bodies it accepted.
    pub(crate) bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every request, refused ones too.
    pub(crate) attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A [`Receiver`] at `path` that answers the first `failing` requests with 503.
pub(crate) fn receiver(path: &str, failing: usize) -> Receiver {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (kept, counted) = (
        std::sync::Arc::clone(&bodies),
        std::sync::Arc::clone(&attempts),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if counted.fetch_add(1, Ordering::SeqCst) < failing {
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
                continue;
            }
            kept.lock().unwrap().push(String::from_utf8(body).unwrap());
            let _ = stream.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n");
        }
    });
    Receiver {
        url,
        bodies,
        attempts,
    }
}

/// The exit code (-1 when killed by a signal).
pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A `mesh serve` child process, stopped when dropped.
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) url: String,
    /// The first line it printed (where it listens, each way in).
    pub(crate) banner: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mesh serve` on a free port in `dir` (its mesh.toml names the catalog), with extra
/// environment variables. Its orchestrator is off (a test's own `mesh run` would race a scheduled
/// one); a test of the orchestrator passes `MESH_NO_SCHEDULES=false`.
pub(crate) fn serve(dir: &Path, env: &[(&str, &str)]) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("MESH_NO_SCHEDULES", "true")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mesh serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    let mut stderr = std::io::BufReader::new(stderr);
    stderr
        .read_line(&mut line)
        .expect("mesh serve prints where it listens");
    // The rest of what it logs is read, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    Server {
        child,
        url,
        banner: line,
    }
}

/// The JSON document a command printed that answered 0 (all good) or 1 (findings).
pub(crate) fn findings_json(out: &Output) -> serde_json::Value {
    assert!(matches!(code(out), 0 | 1), "{}{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
