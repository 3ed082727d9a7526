//! The PostgreSQL wire port with clients no one here wrote: `psql` (Debian's postgresql-client)
//! browses with `\dt` and `\d` and queries; psycopg 3 and SQLAlchemy (PyPI) read a granted port
//! with server-side parameters, get a permission error for an ungranted one and see the masked
//! column masked; writes are refused. Then what a careless or hostile client sends: garbage
//! bytes, an oversized message, a flood of connections, a revoked token mid-connection, TLS
//! required.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{code, mesh, stderr, stdout};

/// `psql` when installed; otherwise `None` with a notice (a failure under CI=true).
fn psql() -> Option<&'static str> {
    let ok = Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("psql");
    }
    mesh_testkit::skip(
        "psql (PostgreSQL's client)",
        "apt-get install postgresql-client",
    );
    None
}

/// The PostgreSQL address a server printed: `host:port`.
fn pg_address(banner: &str) -> String {
    banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("postgres://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no postgres:// address in {banner:?}"))
        .to_owned()
}

/// Runs psql as `user` with `token` on `address`: (exit code, stdout, stderr).
fn run_psql(address: &str, user: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let (host, port) = address.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .arg(format!(
            "host={host} port={port} user={user} dbname=mesh sslmode=disable connect_timeout=10"
        ))
        .args(args)
        .env("PGPASSWORD", token)
        .output()
        .expect("psql runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A mesh where ana (analytics) holds a grant on e-commerce's orders without the e-mail column,
/// served with the PostgreSQL port: (workspace, server, ana's token, olga's token).
fn served(ws: &Path, extra: &[(&str, &str)]) -> (crate::Server, String, String) {
    let (analyst, owner) = crate::access::orders_with_email(ws);
    crate::security::grant(ws, &analyst, &owner, "orders_id,label,amount,updated_at");
    let mut env = vec![
        ("MESH_PG_LISTEN", "127.0.0.1:0"),
        ("MESH_QUERY_BURST", "1000"),
    ];
    env.extend_from_slice(extra);
    let server = crate::serve(ws, &env);
    (server, analyst, owner)
}

#[test]
fn psql_browses_and_queries_only_what_is_granted() {
    let Some(_) = psql() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, ana, _) = served(tmp.path(), &[]);
    let address = pg_address(&server.banner);

    // \dt lists the ports ana may read: her domain's and the granted one, nothing else.
    let (status, out, err) = run_psql(&address, "ana", &ana, &["-c", "\\dt *.*"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("ecommerce") && out.contains("orders"), "{out}");
    assert!(
        !out.contains("customers"),
        "ana may not read customers: {out}"
    );
    // \d describes a port's columns, masked ones included (their values are masked).
    let (status, out, err) = run_psql(&address, "ana", &ana, &["-c", "\\d ecommerce.orders"]);
    assert_eq!(status, 0, "{out}{err}");
    for column in ["orders_id", "amount", "label", "email"] {
        assert!(out.contains(column), "{column} not in {out}");
    }
    // \d+ shows the contract's descriptions as the columns' comments.
    let (status, out, err) = run_psql(&address, "ana", &ana, &["-c", "\\d+ ecommerce.orders"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("Description"), "{out}");
    assert!(out.contains("Where the receipt goes."), "{out}");
    // A port has the same oid on every connection (pooled tools look an oid up on one
    // connection and use it on another).
    let oid_of = || {
        let (status, out, err) = run_psql(
            &address,
            "ana",
            &ana,
            &[
                "-A",
                "-t",
                "-c",
                "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = 'ecommerce' AND c.relname = 'orders'",
            ],
        );
        assert_eq!(status, 0, "{out}{err}");
        out.trim().to_owned()
    };
    let first = oid_of();
    assert!(first.parse::<u32>().is_ok(), "{first}");
    for _ in 0..4 {
        assert_eq!(oid_of(), first);
    }
    // The contract's descriptions are the columns' comments (`col_description`, as tools read
    // them).
    let (status, out, err) = run_psql(
        &address,
        "ana",
        &ana,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'ecommerce' AND c.relname = 'orders' AND a.attnum > 0",
        ],
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("email|Where the receipt goes."), "{out}");
    // A query, with the masked column masked.
    let (status, out, err) = run_psql(
        &address,
        "ana",
        &ana,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT orders_id, amount, email FROM ecommerce.orders ORDER BY orders_id LIMIT 3",
        ],
    );
    assert_eq!(status, 0, "{out}{err}");
    let rows: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        !out.contains("@mail.example"),
        "the e-mail is masked: {out}"
    );
    // An ungranted port: a permission error, the same whether it exists or not.
    for table in ["ecommerce.customers", "ecommerce.no_such_port"] {
        let (status, out, err) = run_psql(
            &address,
            "ana",
            &ana,
            &["-c", &format!("SELECT * FROM {table}")],
        );
        assert_ne!(status, 0, "{out}");
        assert!(err.contains("42501"), "{table}: {err}");
    }
    // Writes and DDL: refused, read-only.
    for sql in [
        "DELETE FROM ecommerce.orders",
        "CREATE TABLE ecommerce.mine (a int)",
        "COPY ecommerce.orders TO '/tmp/x'",
    ] {
        let (status, _, err) = run_psql(&address, "ana", &ana, &["-c", sql]);
        assert_ne!(status, 0, "{sql}");
        assert!(err.contains("25006"), "{sql}: {err}");
    }
    // Signing in: the wrong token, another database, a token of someone else.
    let (status, _, err) = run_psql(
        &address,
        "ana",
        &format!("mesh_{}", "0".repeat(64)),
        &["-c", "SELECT 1"],
    );
    // (psql prints no SQLSTATE for a failed connection; the drivers' test checks 28P01.)
    assert_ne!(status, 0);
    assert!(
        err.contains("password authentication failed for user \"ana\""),
        "{err}"
    );
    let (status, _, err) = run_psql(&address, "olga", &ana, &["-c", "SELECT 1"]);
    assert_ne!(status, 0);
    assert!(err.contains("token of ana"), "{err}");
    drop(server);
}

#[test]
fn python_drivers_read_with_parameters_masks_and_errors() {
    let Some(python) = mesh_testkit::python(
        "psycopg, sqlalchemy",
        "psycopg[binary] sqlalchemy",
        "the psycopg and SQLAlchemy tests",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (server, ana, _) = served(tmp.path(), &[]);
    let address = pg_address(&server.banner);
    let (host, port) = address.rsplit_once(':').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg_clients.py");
    let out = Command::new(python)
        .arg(&script)
        .args([host, port, "ana", &ana])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let params = seen["params"].as_array().unwrap();
    assert!(!params.is_empty(), "{seen}");
    assert!(
        params.iter().all(|r| r[1].as_f64().unwrap() > 10.0),
        "{seen}"
    );
    let prepared = seen["prepared"].as_array().unwrap();
    assert_eq!(prepared.len(), 2);
    assert!(
        prepared[0].as_i64().unwrap() > 0 && prepared[1] == 0,
        "{seen}"
    );
    assert_eq!(seen["binary"].as_array().unwrap().len(), 2, "{seen}");
    assert!(
        seen["masked"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| !v.as_str().unwrap_or_default().contains("@mail.example")),
        "{seen}"
    );
    assert_eq!(seen["ungranted"]["sqlstate"], "42501", "{seen}");
    assert_eq!(seen["ungranted"]["type"], "InsufficientPrivilege", "{seen}");
    assert_eq!(seen["write"]["sqlstate"], "25006", "{seen}");
    assert_eq!(seen["ddl"]["sqlstate"], "25006", "{seen}");
    // An error while rows are produced is an error (never a shorter result), and the
    // connection goes on.
    assert!(seen["cast"]["sqlstate"].is_string(), "{seen}");
    assert!(
        seen["cast"]["message"]
            .as_str()
            .unwrap()
            .contains("Cannot cast"),
        "{seen}"
    );
    assert_eq!(seen["after_errors"], 1);
    assert_eq!(seen["cancel"]["sqlstate"], "57014", "{seen}");
    assert!(seen["cancel_seconds"].as_f64().unwrap() < 30.0, "{seen}");
    assert_eq!(seen["after_cancel"], 2, "{seen}");
    // libpq reports a refused connection by its message (no SQLSTATE reaches the driver).
    let message = |case: &str| {
        seen[case]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message("wrong_password").contains("password authentication failed"),
        "{seen}"
    );
    assert!(
        message("wrong_database").contains("database \"postgres\" does not exist"),
        "{seen}"
    );
    assert!(message("wrong_user").contains("token of ana"), "{seen}");
    assert_eq!(seen["sqlalchemy"], seen["params"], "{seen}");
    assert_eq!(seen["sqlalchemy_ungranted"]["sqlstate"], "42501", "{seen}");
    assert!(
        seen["sqlalchemy_tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "orders"),
        "{seen}"
    );
    drop(server);
}

/// Reads everything a server sends until it closes (or 5 s pass).
fn drain(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    all
}

#[test]
fn garbage_huge_messages_floods_and_revocations_never_take_it_down() {
    let Some(_) = psql() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, ana, _) = served(tmp.path(), &[("MESH_PG_MAX_CONNECTIONS", "8")]);
    let address = pg_address(&server.banner);
    let alive = || {
        let (status, out, err) = run_psql(&address, "ana", &ana, &["-A", "-t", "-c", "SELECT 1"]);
        assert_eq!((status, out.trim()), (0, "1"), "{err}");
    };
    alive();

    // Garbage instead of a startup message: an error (08P01), then the connection closes.
    let mut garbage = std::net::TcpStream::connect(&address).unwrap();
    garbage
        .write_all(&[0, 0, 0, 16, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut garbage)).into_owned();
    assert!(answer.contains("08P01"), "{answer:?}");
    // A startup message that says it is 1 GiB long: refused before it is read.
    let mut huge = std::net::TcpStream::connect(&address).unwrap();
    huge.write_all(&(1i32 << 30).to_be_bytes()).unwrap();
    huge.write_all(&196_608i32.to_be_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut huge)).into_owned();
    assert!(
        answer.contains("54000") || answer.contains("08P01"),
        "{answer:?}"
    );
    alive();

    // A flood: past the cap each connection gets 53300 at once; the server keeps serving.
    let mut idle: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    // Once the server has taken the eight (however slow a loaded machine is), the next is refused.
    let mut answer = String::new();
    for _ in 0..10 {
        let mut next = std::net::TcpStream::connect(&address).unwrap();
        next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let n = next.read(&mut buf).unwrap_or(0);
        answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if answer.contains("53300") {
            break;
        }
        idle.push(next);
    }
    assert!(answer.contains("53300"), "{answer:?}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    alive();

    // A token revoked while its connection is open: the next statement ends the connection.
    let token = {
        let out = mesh(
            tmp.path(),
            &["token", "create", "ivan", "--role", "consumer"],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let (host, port) = address.rsplit_once(':').unwrap();
    let mut child = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose"])
        .arg(format!(
            "host={host} port={port} user=ivan dbname=mesh sslmode=disable"
        ))
        .env("PGPASSWORD", &token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout_lines = std::io::BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "SELECT 41 + 1;").unwrap();
    stdin.flush().unwrap();
    // The first answer, read before the revocation (however slow a loaded machine is).
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout_lines, &mut first).unwrap();
    assert_eq!(first.trim(), "42");
    let out = mesh(tmp.path(), &["token", "revoke", "--principal", "ivan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    writeln!(stdin, "SELECT 43 + 1;").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout_lines.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!rest.contains("44"), "{rest}{err}");
    assert!(err.contains("28000"), "{err}");
    alive();
    drop(server);
}

#[test]
fn with_a_certificate_only_tls_connections_are_served() {
    let Some(_) = psql() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("pg.crt"), tmp.path().join("pg.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let (server, ana, _) = {
        let (analyst, owner) = crate::access::orders_with_email(&ws);
        crate::security::grant(&ws, &analyst, &owner, "orders_id,label,amount,updated_at");
        let server = crate::serve(
            &ws,
            &[
                ("MESH_PG_LISTEN", "127.0.0.1:0"),
                ("MESH_PG_TLS_CERT", cert.to_str().unwrap()),
                ("MESH_PG_TLS_KEY", key.to_str().unwrap()),
            ],
        );
        (server, analyst, owner)
    };
    assert!(
        server.banner.contains("sslmode=require"),
        "{}",
        server.banner
    );
    let address = pg_address(&server.banner);
    let (host, port) = address.rsplit_once(':').unwrap();
    let connect = |mode: &str| {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                "SELECT count(*) FROM ecommerce.orders",
            ])
            .arg(format!(
                "host={host} port={port} user=ana dbname=mesh sslmode={mode}"
            ))
            .env("PGPASSWORD", &ana)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, out, err) = connect("require");
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.trim().parse::<u64>().unwrap() > 0, "{out}");
    let (status, _, err) = connect("disable");
    assert_ne!(status, 0);
    assert!(err.contains("only TLS connections"), "{err}");
    drop(server);
}
