//! Delta tables by location: a local folder (`file://` or a path) or an object-store URL
//! (`s3://`), opened with deltalake. What the pipeline writes and the governed read reads.

use deltalake::DeltaTable;

use crate::error::DeltaError;

/// `file:///abs/path/` or an object-store URL, for a table location.
pub fn table_url(location: &str) -> Result<url::Url, DeltaError> {
    let bad = |reason: String| DeltaError {
        location: location.to_owned(),
        reason,
    };
    if location.contains("://") && !location.starts_with("file://") {
        return url::Url::parse(location).map_err(|e| bad(e.to_string()));
    }
    let path = std::path::PathBuf::from(location.trim_start_matches("file://"));
    std::fs::create_dir_all(&path).map_err(|e| bad(e.to_string()))?;
    let path = std::fs::canonicalize(&path).map_err(|e| bad(e.to_string()))?;
    url::Url::from_directory_path(&path).map_err(|()| bad("not an absolute path".into()))
}

/// Opens a Delta table (uninitialized when there is none yet). On S3, deltalake's own store is
/// used, configured from the `AWS_*` environment (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP` for an
/// S3-compatible store).
pub async fn open(location: &str) -> Result<DeltaTable, DeltaError> {
    let url = table_url(location)?;
    if matches!(url.scheme(), "s3" | "s3a") {
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
    }
    DeltaTable::try_from_url(url)
        .await
        .map_err(DeltaError::at(location))
}
