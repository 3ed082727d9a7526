//! `mesh test` on an S3 server (S3-compatible storage: moto in CI, `MESH_TEST_S3_ENDPOINT`).
//! Without an endpoint the test prints a notice and skips; under `CI=true` it fails, because
//! `.ci/run` starts one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use object_store::ObjectStoreExt as _;

use crate::{mesh_with_env, stdout};

pub(crate) fn endpoint() -> Option<String> {
    if let Ok(e) = std::env::var("MESH_TEST_S3_ENDPOINT") {
        return Some(e);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "CI=true but MESH_TEST_S3_ENDPOINT is not set (.ci/run starts moto)"
    );
    crate::notice("notice: MESH_TEST_S3_ENDPOINT not set; skipping the S3 test");
    None
}

/// The environment a `mesh` process reads the test server with (moto takes any keys).
pub(crate) fn env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// The test server's `bucket`, for the test itself to put and list objects.
pub(crate) fn store(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("store")
}

/// Creates a bucket with an unsigned PUT (S3-compatible test servers accept it).
pub(crate) fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).expect("connect to the S3 endpoint");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {response}"
    );
}

#[test]
fn s3_servers_are_read_like_local_files() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = format!("mesh-test-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    let people = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/test/people");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = store(&endpoint, &bucket);
        let mut uploads: Vec<String> = vec!["people.parquet".to_owned()];
        // The Delta table, file for file.
        for dir in ["people.delta", "people.delta/_delta_log"] {
            for entry in std::fs::read_dir(people.join(dir))
                .expect("delta fixture")
                .flatten()
            {
                if entry.path().is_file() {
                    uploads.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        let mut copies: Vec<(String, String)> =
            uploads.into_iter().map(|f| (f.clone(), f)).collect();
        copies.push(("people.csv".to_owned(), "parts/a.csv".to_owned()));
        copies.push(("people.csv".to_owned(), "parts/b.csv".to_owned()));
        for (from, to) in copies {
            let bytes = std::fs::read(people.join(&from)).expect("read fixture");
            store
                .put(&object_store::path::Path::from(to.as_str()), bytes.into())
                .await
                .expect("upload");
        }
    });

    let tmp = tempfile::tempdir().expect("tempdir");
    let contract = std::fs::read_to_string(people.join("people.odcs.yaml")).expect("contract");
    let servers = format!(
        "servers:\n  - server: s3-parquet\n    type: s3\n    location: s3://{bucket}/people.parquet\n    endpointUrl: {endpoint}\n    format: parquet\n  - server: s3-csv\n    type: s3\n    location: s3://{bucket}/parts/*.csv\n    endpointUrl: {endpoint}\n    format: csv\n  - server: s3-delta\n    type: s3\n    location: s3://{bucket}/people.delta\n    endpointUrl: {endpoint}\n    format: delta\n"
    );
    let start = contract.find("servers:").expect("servers");
    let end = contract.find("schema:").expect("schema");
    let s3_contract = format!("{}{servers}{}", &contract[..start], &contract[end..]);
    std::fs::write(tmp.path().join("people.odcs.yaml"), s3_contract).expect("write");

    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let local = mesh_with_env(
        &people,
        &["test", "people.odcs.yaml", "--server", "parquet"],
        &[],
    );
    let summary = |out: &std::process::Output| {
        stdout(out)
            .lines()
            .last()
            .unwrap_or_default()
            .split(" — ")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let parquet = mesh_with_env(
        tmp.path(),
        &["test", "people.odcs.yaml", "--server", "s3-parquet"],
        &env,
    );
    assert_eq!(summary(&parquet), summary(&local), "{}", stdout(&parquet));
    assert_eq!(parquet.status.code(), Some(1));
    let delta = mesh_with_env(
        tmp.path(),
        &["test", "people.odcs.yaml", "--server", "s3-delta"],
        &env,
    );
    assert_eq!(summary(&delta), summary(&local), "{}", stdout(&delta));
    // The glob reads both copies: twice the rows, the same rules broken.
    let csv = mesh_with_env(
        tmp.path(),
        &[
            "test",
            "people.odcs.yaml",
            "--server",
            "s3-csv",
            "--checks",
            "quality",
        ],
        &env,
    );
    assert!(
        stdout(&csv).contains("Actual row_count was 20"),
        "{}",
        stdout(&csv)
    );
}
