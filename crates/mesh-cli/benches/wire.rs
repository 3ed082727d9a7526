//! One port read whole three ways, in the same run: the PostgreSQL wire (the extended protocol
//! with binary results, as JDBC and most drivers read), Arrow Flight SQL, and HTTP with Arrow IPC.
//! The wire is read three ways: by the protocol's message reader (postgres-protocol), which
//! measures the wire itself, and by two Rust drivers, tokio-postgres and sqlx, which add their
//! per-row cost (a row object per row). The wire clients decode every value; the Arrow clients
//! decode every batch. Goal (issue 24): the wire read within 1.5x Flight SQL's time.
//!
//! `cargo bench -p mesh-cli --bench wire` (env: ROWS=1000000 RUNS=7). Prints figures; asserts
//! nothing about time.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use sqlx::Row as _;

mod common;
use common::{env, median, ms};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SQL: &str = "SELECT orders_id, label, amount FROM ecommerce.orders";

fn main() {
    let rows = env("ROWS", 1_000_000);
    let runs = env("RUNS", 7);
    let served = common::Served::orders(
        rows,
        &["--pg-listen", "127.0.0.1:0", "--result-memory", "4096"],
    );
    let pg = served
        .banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("postgres://"))
        .and_then(|rest| rest.split('/').next())
        .expect("the server prints its PostgreSQL address")
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = served.analyst.clone();
    let url = served.url.clone();

    let mut pg_conn = runtime.block_on(async {
        use sqlx::ConnectOptions as _;
        let (host, port) = pg.rsplit_once(':').unwrap();
        sqlx::postgres::PgConnectOptions::new()
            .host(host)
            .port(port.parse().unwrap())
            .username("ana")
            .password(&token)
            .database("mesh")
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
            .statement_cache_capacity(0)
            .connect()
            .await
            .expect("a PostgreSQL connection")
    });
    let rust_postgres = runtime.block_on(async {
        let (host, port) = pg.rsplit_once(':').unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port.parse().unwrap())
            .user("ana")
            .password(&token)
            .dbname("mesh");
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("a PostgreSQL connection");
        tokio::spawn(connection);
        client
    });
    // The same read through the PostgreSQL protocol's own message reader (postgres-protocol, the
    // layer under tokio-postgres), without a driver's row objects: what the wire costs, with
    // every message parsed and every value decoded.
    let mut raw = runtime.block_on(protocol::Connection::open(&pg, "ana", &token));
    let protocol_read = |conn: &mut protocol::Connection| -> (Duration, usize) {
        runtime.block_on(async {
            let started = Instant::now();
            let n = conn.read_all(SQL).await;
            (started.elapsed(), n)
        })
    };
    let http = reqwest::Client::new();

    // Each read: (time, rows decoded).
    let wire = |conn: &mut sqlx::PgConnection| -> (Duration, usize) {
        runtime.block_on(async {
            let started = Instant::now();
            let mut n = 0usize;
            let mut total = 0.0f64;
            let mut stream = sqlx::query(SQL).fetch(&mut *conn);
            while let Some(row) = stream.try_next().await.unwrap() {
                let id: String = row.get(0);
                let label: String = row.get(1);
                let amount: f64 = row.get(2);
                n += usize::from(!id.is_empty() && !label.is_empty());
                total += amount;
            }
            assert!(total >= 0.0);
            (started.elapsed(), n)
        })
    };
    let tokio_pg = || -> (Duration, usize) {
        runtime.block_on(async {
            let started = Instant::now();
            let rows = rust_postgres
                .query_raw(
                    SQL,
                    std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
                )
                .await
                .unwrap();
            futures::pin_mut!(rows);
            let (mut n, mut total) = (0usize, 0.0f64);
            while let Some(row) = rows.try_next().await.unwrap() {
                let id: &str = row.get(0);
                let label: &str = row.get(1);
                let amount: f64 = row.get(2);
                n += usize::from(!id.is_empty() && !label.is_empty());
                total += amount;
            }
            assert!(total >= 0.0);
            (started.elapsed(), n)
        })
    };
    let flight = || -> (Duration, usize) {
        runtime.block_on(async {
            use arrow_flight::sql::client::FlightSqlServiceClient;
            let started = Instant::now();
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = FlightSqlServiceClient::new(channel);
            client.set_token(token.clone());
            let info = client.execute(SQL.to_owned(), None).await.unwrap();
            let mut n = 0;
            for endpoint in info.endpoint {
                let mut stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
                while let Some(batch) = stream.try_next().await.unwrap() {
                    n += batch.num_rows();
                }
            }
            (started.elapsed(), n)
        })
    };
    let arrow_http = || -> (Duration, usize) {
        runtime.block_on(async {
            let started = Instant::now();
            let response = http
                .post(format!("{url}/api/v1/query?format=arrow"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "sql": SQL }))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let bytes = response.bytes().await.unwrap();
            let reader = mesh_engine::query::arrow::ipc::reader::StreamReader::try_new(
                std::io::Cursor::new(bytes),
                None,
            )
            .unwrap();
            let n = reader.map(|b| b.unwrap().num_rows()).sum();
            (started.elapsed(), n)
        })
    };

    let (mut p, mut t, mut w, mut f, mut h) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let (tp, np) = protocol_read(&mut raw);
        let (tt, nt) = tokio_pg();
        let (tw, nw) = wire(&mut pg_conn);
        let (tf, nf) = flight();
        let (th, nh) = arrow_http();
        assert_eq!(
            (np, nt, nw, nf, nh),
            (rows, rows, rows, rows, rows),
            "every client read every row"
        );
        // The first of each is a warm-up.
        if i > 0 {
            p.push(tp);
            t.push(tt);
            w.push(tw);
            f.push(tf);
            h.push(th);
        }
    }
    let (p, t, w, f, h) = (median(p), median(t), median(w), median(f), median(h));
    println!(
        "\n{rows} rows x 3 columns of one granted port, read whole ({runs} runs each, interleaved, median):"
    );
    println!(
        "  PostgreSQL wire, protocol reader (extended, binary): {}",
        ms(p)
    );
    println!(
        "  PostgreSQL wire, tokio-postgres (extended, binary): {}",
        ms(t)
    );
    println!(
        "  PostgreSQL wire, sqlx (extended, binary):           {}",
        ms(w)
    );
    println!(
        "  Arrow Flight SQL:                                    {}",
        ms(f)
    );
    println!(
        "  HTTP, Arrow IPC:                                     {}",
        ms(h)
    );
    println!(
        "  wire / Flight SQL = {:.2}x (goal <= 1.5x); with a driver's rows: {:.2}x tokio-postgres, {:.2}x sqlx",
        p.as_secs_f64() / f.as_secs_f64(),
        t.as_secs_f64() / f.as_secs_f64(),
        w.as_secs_f64() / f.as_secs_f64()
    );
    drop(served);
}

/// A PostgreSQL client reduced to the protocol: postgres-protocol writes the messages and parses
/// the answers; every DataRow's values are decoded.
mod protocol {
    use bytes::BytesMut;
    use fallible_iterator::FallibleIterator as _;
    use postgres_protocol::message::{backend, frontend};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    pub(crate) struct Connection {
        stream: tokio::net::TcpStream,
        buf: BytesMut,
    }

    impl Connection {
        pub(crate) async fn open(address: &str, user: &str, password: &str) -> Connection {
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut conn = Connection {
                stream,
                buf: BytesMut::with_capacity(1 << 20),
            };
            let mut out = BytesMut::new();
            frontend::startup_message([("user", user), ("database", "mesh")], &mut out).unwrap();
            conn.stream.write_all(&out).await.unwrap();
            loop {
                match conn.next().await {
                    backend::Message::AuthenticationCleartextPassword => {
                        let mut out = BytesMut::new();
                        frontend::password_message(password.as_bytes(), &mut out).unwrap();
                        conn.stream.write_all(&out).await.unwrap();
                    }
                    backend::Message::ReadyForQuery(_) => return conn,
                    backend::Message::ErrorResponse(_) => panic!("sign-in refused"),
                    _ => {}
                }
            }
        }

        async fn next(&mut self) -> backend::Message {
            loop {
                if let Some(message) = backend::Message::parse(&mut self.buf).unwrap() {
                    return message;
                }
                self.buf.reserve(256 << 10);
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "the server closed the connection");
            }
        }

        /// Runs `sql` (extended protocol, binary results), decoding (id, label, amount) rows.
        pub(crate) async fn read_all(&mut self, sql: &str) -> usize {
            let mut out = BytesMut::new();
            frontend::parse("", sql, std::iter::empty(), &mut out).unwrap();
            frontend::bind(
                "",
                "",
                std::iter::empty(),
                std::iter::empty::<()>(),
                |_, _| unreachable!("no parameters"),
                [1],
                &mut out,
            )
            .map_err(|_| "bind")
            .unwrap();
            frontend::execute("", 0, &mut out).unwrap();
            frontend::sync(&mut out);
            self.stream.write_all(&out).await.unwrap();
            let (mut n, mut total) = (0usize, 0.0f64);
            loop {
                match self.next().await {
                    backend::Message::DataRow(row) => {
                        let buffer = row.buffer();
                        let mut ranges = row.ranges();
                        let mut field = || ranges.next().unwrap().unwrap().unwrap();
                        let id = postgres_protocol::types::text_from_sql(&buffer[field()]).unwrap();
                        let label =
                            postgres_protocol::types::text_from_sql(&buffer[field()]).unwrap();
                        let amount =
                            postgres_protocol::types::float8_from_sql(&buffer[field()]).unwrap();
                        n += usize::from(!id.is_empty() && !label.is_empty());
                        total += amount;
                    }
                    backend::Message::ErrorResponse(_) => panic!("the read failed"),
                    backend::Message::ReadyForQuery(_) => break,
                    _ => {}
                }
            }
            assert!(total >= 0.0);
            n
        }
    }
}
