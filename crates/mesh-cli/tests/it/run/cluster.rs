//! `mesh run` on a Ballista cluster of separate processes on loopback: `mesh cluster scheduler`
//! and two `mesh cluster executor`s, with the data only on S3 (moto in CI): the source's raw
//! file, the source product's partitioned Delta table, the derived product's table. No process
//! reads another's disk. Then an executor is killed while it works, and the catalog must still
//! tell the truth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt as _;

use crate::{code, mesh_with_env, stderr, stdout};

/// The cluster's processes, killed when the test ends, however it ends.
struct Cluster {
    scheduler: String,
    /// The executors, in the order they were started.
    executors: Vec<Child>,
    /// Each executor's work directory (its shuffle files).
    work: Vec<PathBuf>,
    others: Vec<Child>,
    /// Each process's log (its stderr), shown when the test fails.
    logs: Vec<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain(self.others.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                crate::notice(&format!("--- {} (last 60 lines)\n{tail}", log.display()));
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start(dir: &Path, env: &[(&str, &str)], count: usize) -> Cluster {
        let mut logs = Vec::new();
        let mut spawn = |name: &str, args: &[&str]| {
            let log = dir.join(format!("{name}.log"));
            let file = std::fs::File::create(&log).unwrap();
            logs.push(log);
            Command::new(env!("CARGO_BIN_EXE_mesh"))
                .args(args)
                .current_dir(dir)
                .envs(env.iter().copied())
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .unwrap()
        };
        let scheduler = format!("127.0.0.1:{}", free_port());
        let others = vec![spawn(
            "scheduler",
            &["cluster", "scheduler", "--listen", &scheduler],
        )];
        let mut executors = Vec::new();
        let mut work = Vec::new();
        // Up when it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&scheduler).is_err() {
            assert!(Instant::now() < deadline, "the scheduler never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
        for i in 0..count {
            let dir = dir.join(format!("executor-{i}"));
            std::fs::create_dir(&dir).unwrap();
            let listen = format!("127.0.0.1:{}", free_port());
            executors.push(spawn(
                &format!("executor-{i}"),
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &scheduler,
                    "--listen",
                    &listen,
                    "--work-dir",
                    dir.to_str().unwrap(),
                    "--tasks",
                    "2",
                ],
            ));
            work.push(dir);
        }
        Cluster {
            scheduler,
            executors,
            work,
            others,
            logs,
        }
    }
}

/// CPU time a process has used, in clock ticks (user + system, from `/proc`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces): state is field 3, utime 14.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn runs_execute_on_a_cluster_of_separate_processes() {
    let Some(endpoint) = crate::s3::endpoint() else {
        return;
    };
    let bucket = format!("mesh-cluster-{}", std::process::id());
    crate::s3::create_bucket(&endpoint, &bucket);
    let env = crate::s3::env(&endpoint);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = crate::s3::store(&endpoint, &bucket);
    let keys = |prefix: &str| -> Vec<String> {
        runtime.block_on(async {
            use futures::TryStreamExt as _;
            let prefix = object_store::path::Path::from(prefix);
            object_store::ObjectStore::list(&store, Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        })
    };

    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let mut cluster = Cluster::start(tmp.path(), &env, 2);
    let ok = |args: &[&str]| {
        let out = mesh_with_env(&ws, args, &env);
        assert_eq!(code(&out), 0, "{args:?}\n{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };

    // The workspace keeps its tables on S3, and the source's raw file is there too (and
    // nowhere else).
    crate::two_domains(&ws, Some(("orders_per_label", "aggregate")), &env);
    let edit = |file: &str, from: &str, to: &str| {
        let path = ws.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        "mesh.toml",
        "url = \"file://.mesh/data\"",
        &format!("url = \"s3://{bucket}/data\""),
    );
    let csv_path = ws.join("ecommerce/orders/data/orders.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    runtime
        .block_on(store.put(
            &object_store::path::Path::from("raw/orders.csv"),
            csv.clone().into_bytes().into(),
        ))
        .unwrap();
    std::fs::remove_file(&csv_path).unwrap();
    edit(
        "ecommerce/orders/product.odps.yaml",
        "path: data/orders.csv",
        &format!("path: s3://{bucket}/raw/orders.csv"),
    );
    // The upstream port is partitioned by label.
    edit(
        "ecommerce/orders/contracts/orders.odcs.yaml",
        "        description: A name people use for the row.\n        logicalType: string\n",
        "        description: A name people use for the row.\n        logicalType: string\n        partitioned: true\n        partitionKeyPosition: 1\n",
    );
    let raw = format!("s3://{bucket}/raw");
    ok(&["location", "add", "raw", &raw, "--domain", "ecommerce"]);
    ok(&["publish", "ecommerce/orders", "analytics/orders_per_label"]);
    crate::grant_input(
        &ws,
        "analytics.orders_per_label",
        "ecommerce.orders.orders",
        &env,
        None,
    );

    let at = format!("ballista://{}", cluster.scheduler);
    let run = |dir: &str| -> serde_json::Value {
        let out = ok(&["run", dir, "--executor", &at, "--output", "json"]);
        serde_json::from_str(&out).unwrap()
    };
    let source = run("ecommerce/orders");
    assert_eq!(source["published"], true, "{source}");
    let table = "data/ecommerce/orders/orders/v0";
    assert_eq!(source["location"], format!("s3://{bucket}/{table}"));
    let files = keys(table);
    assert!(
        files
            .iter()
            .any(|k| k.contains("/label=south/") && k.ends_with(".parquet")),
        "the source's table is not partitioned by label: {files:?}"
    );

    let derived = run("analytics/orders_per_label");
    assert_eq!(derived["published"], true, "{derived}");
    let runs = |port: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&["runs", port, "--output", "json"])).unwrap()
    };
    let history = runs("analytics.orders_per_label");
    assert_eq!(history["runs"][0]["rows_out"], 5, "{history}");
    assert_eq!(history["snapshots"][0]["run"], derived["run"], "{history}");
    // Version 0 creates the table, version 1 holds the run's rows.
    let published = history["snapshots"][0]["delta_version"].as_u64().unwrap();
    assert_eq!(published, 1, "{history}");
    // The counts are the raw file's, label by label: the partition values came through.
    let mut expected: Vec<(String, usize)> = Vec::new();
    for line in csv.lines().skip(1) {
        let label = line.split(',').nth(1).unwrap().to_owned();
        match expected.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => expected.push((label, 1)),
        }
    }
    expected.sort();
    let counts = |times: usize| -> String {
        let mut text = String::from("label,row_count\n");
        for (label, n) in &expected {
            text.push_str(&format!("{label},{}\n", n * times));
        }
        text
    };
    let read = || {
        ok(&[
            "query",
            "SELECT label, row_count FROM analytics.orders_per_label ORDER BY label",
            "--format",
            "csv",
        ])
    };
    assert_eq!(read(), counts(1));
    // An aggregate is two stages: the executors wrote the first one's shuffle files, each in
    // its own work directory, and neither is this process.
    for dir in &cluster.work {
        let files = walk(dir);
        assert!(
            files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "arrow")),
            "no shuffle file in {}: {files:?}",
            dir.display()
        );
    }

    // An executor killed while it works: Ballista runs its tasks again elsewhere, or the run
    // fails; either way the catalog and the table say the same thing, and nothing half-done
    // is visible.
    const TIMES: usize = 400_000;
    std::fs::write(
        ws.join("analytics/orders_per_label/transform.sql"),
        format!(
            "SELECT label, COUNT(*) AS row_count\n\
             FROM orders CROSS JOIN (SELECT unnest(range(0, {TIMES})) AS n) AS g\n\
             WHERE label IS NOT NULL\nGROUP BY label\n"
        ),
    )
    .unwrap();
    let mut submit = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "run",
            "analytics/orders_per_label",
            "--executor",
            &at,
            "--output",
            "json",
        ])
        .current_dir(&ws)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pids: Vec<u32> = cluster.executors.iter().map(Child::id).collect();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if let Some(status) = submit.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before an executor had worked a second: make the work bigger"
            );
        }
        assert!(Instant::now() < deadline, "no executor ever worked");
        // The first executor to have spent a second of CPU on the job is the one killed.
        let busy = pids
            .iter()
            .zip(&before)
            .position(|(&pid, &start)| cpu_ticks(pid).saturating_sub(start) >= 100);
        if let Some(i) = busy {
            cluster.executors[i].kill().unwrap();
            cluster.executors[i].wait().unwrap();
            break i;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while submit.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = submit.kill();
            panic!(
                "the run neither finished nor failed in 3 minutes after executor {killed} was killed"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = submit.wait_with_output().unwrap();
    let history = runs("analytics.orders_per_label");
    let states: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert!(
        !states.contains(&"running"),
        "a run is left open: {history}"
    );
    let log = keys("data/analytics/orders_per_label");
    let committed = |version: u64| {
        log.iter()
            .any(|k| k.ends_with(&format!("_delta_log/{version:020}.json")))
    };
    if code(&out) == 0 {
        // Ballista ran the killed executor's tasks on the other one.
        crate::notice(&format!(
            "notice: the run survived executor {killed}'s death (Ballista ran its tasks again)"
        ));
        assert_eq!(states[0], "succeeded", "{history}");
        assert_eq!(
            history["snapshots"][0]["delta_version"],
            published + 1,
            "{history}"
        );
        assert!(committed(published + 1), "{log:?}");
        assert_eq!(read(), counts(TIMES));
    } else {
        crate::notice(&format!(
            "notice: the run failed when executor {killed} died: {}",
            stderr(&out)
        ));
        assert_eq!(states[0], "failed", "{history}");
        assert_eq!(
            history["snapshots"][0]["delta_version"], published,
            "{history}"
        );
        assert!(
            !committed(published + 1),
            "a version was committed by a failed run: {log:?}"
        );
        assert_eq!(read(), counts(1));
    }

    // A scheduler that is not there is a clear error, not a hang; so is an address that is not
    // one.
    let gone = format!("ballista://127.0.0.1:{}", free_port());
    for (executor, says) in [
        (gone.as_str(), "Ballista scheduler at"),
        ("ballista://nowhere", "ballista://HOST:PORT"),
    ] {
        let out = mesh_with_env(
            &ws,
            &["run", "analytics/orders_per_label", "--executor", executor],
            &env,
        );
        assert_ne!(code(&out), 0);
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}
