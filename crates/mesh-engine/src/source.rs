//! Where a model's data is and how to read it: a `--data` path or the contract's server (`local`
//! with `path` and `format`, `s3` with `location`), resolved to a DataFusion table.
//!
//! Relative server paths are resolved against the contract's folder first, then the current
//! folder (datacontract-cli resolves them against the current folder; a product folder should be
//! self-contained — both work). Globs (`data/*.parquet`) and folders are read as one table whose
//! schema merges the files' schemas.
//!
//! CSV is read as text — every column `Utf8` — so a type check asks "can every value be read as
//! the contract's type?" rather than trusting a guess made from the first rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use mesh_model::odcs::{Server, ServerType};

use crate::error::EngineError;
use crate::progress::{Metered, Progress};

/// A data format mesh reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv {
        delimiter: u8,
    },
    /// JSON: one object per line (`newline_delimited`), or one array of objects.
    Json {
        newline_delimited: bool,
    },
    Delta,
}

impl Format {
    /// The format a file name suggests.
    pub fn from_extension(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Some(match ext {
            "parquet" | "pq" => Format::Parquet,
            "csv" => Format::Csv { delimiter: b',' },
            "tsv" => Format::Csv { delimiter: b'\t' },
            "jsonl" | "ndjson" => Format::Json {
                newline_delimited: true,
            },
            "json" => Format::Json {
                newline_delimited: true,
            },
            _ => return None,
        })
    }

    /// A format named in a contract or on the command line (`parquet`, `csv`, `json`, `delta`).
    pub fn from_name(name: &str, delimiter: Option<&str>) -> Option<Format> {
        Some(match name.to_ascii_lowercase().as_str() {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv {
                delimiter: match delimiter {
                    Some("\\t" | "\t" | "tab") => b'\t',
                    Some(d) if d.len() == 1 => d.as_bytes()[0],
                    _ => b',',
                },
            },
            "json" | "ndjson" | "jsonl" => Format::Json {
                newline_delimited: delimiter != Some("array"),
            },
            "delta" => Format::Delta,
            _ => return None,
        })
    }

    /// Which columns of this format hold text that the contract's types must be read from:
    /// every CSV column; JSON strings where the contract says date, timestamp or time (JSON has
    /// no such types).
    pub fn text_read(self) -> Option<TextRead> {
        match self {
            Format::Csv { .. } => Some(TextRead::AllColumns),
            Format::Json { .. } => Some(TextRead::Temporal),
            Format::Parquet | Format::Delta => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv { .. } => "csv",
            Format::Json { .. } => "json",
            Format::Delta => "delta",
        }
    }
}

/// Text columns whose values are read as the contract's types (see [`Format::text_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRead {
    AllColumns,
    Temporal,
}

/// Where to read data from.
#[derive(Debug, Clone)]
pub struct Location {
    /// A local path (possibly a glob or folder), or an object-store URL (`s3://bucket/prefix`).
    pub target: String,
    pub format: Format,
    /// The server it came from, when it came from the contract.
    pub server: Option<String>,
    /// For `s3`: the endpoint of S3-compatible storage.
    pub endpoint: Option<String>,
}

impl Location {
    /// An error about this location.
    fn bad(&self, reason: impl Into<String>) -> EngineError {
        EngineError::BadLocation {
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    /// A `--data` path with an optional `--format`.
    pub fn from_path(path: &str, format: Option<&str>) -> Result<Location, EngineError> {
        let format = match format {
            Some(name) => Format::from_name(name, None)
                .ok_or_else(|| EngineError::UnknownFormat(name.to_owned()))?,
            None => detect(path)?,
        };
        Ok(Location {
            target: path.to_owned(),
            format,
            server: None,
            endpoint: None,
        })
    }

    /// The location a contract's server describes. `base` is the contract's folder.
    pub fn from_server(server: &Server, base: &Path) -> Result<Location, EngineError> {
        let name = server.server.clone();
        match server.server_type {
            ServerType::Local => {
                let path = server
                    .path
                    .as_deref()
                    .ok_or_else(|| EngineError::ServerIncomplete {
                        server: name.clone(),
                        missing: "path",
                    })?;
                let format = match server.format.as_deref() {
                    Some(f) => Format::from_name(f, server.delimiter.as_deref())
                        .ok_or_else(|| EngineError::UnknownFormat(f.to_owned()))?,
                    None => detect(path)?,
                };
                Ok(Location {
                    target: resolve_local(path, base),
                    format,
                    server: Some(name),
                    endpoint: None,
                })
            }
            ServerType::S3 => {
                let location =
                    server
                        .location
                        .as_deref()
                        .ok_or_else(|| EngineError::ServerIncomplete {
                            server: name.clone(),
                            missing: "location",
                        })?;
                let format = match server.format.as_deref() {
                    Some(f) => Format::from_name(f, server.delimiter.as_deref())
                        .ok_or_else(|| EngineError::UnknownFormat(f.to_owned()))?,
                    None => Format::from_extension(location).unwrap_or(Format::Parquet),
                };
                Ok(Location {
                    target: location.to_owned(),
                    format,
                    server: Some(name),
                    endpoint: server.endpoint_url.clone(),
                })
            }
            other => Err(EngineError::UnsupportedServer {
                server: name,
                server_type: other.as_str().to_owned(),
            }),
        }
    }

    fn is_object_store(&self) -> bool {
        self.target.contains("://") && !self.target.starts_with("file://")
    }

    /// The location of one model's data when several models share a folder: `<folder>/<name>.*`
    /// or `<folder>/<name>/`.
    pub fn for_model(&self, physical_name: &str) -> Location {
        let base = self.target.trim_end_matches('/');
        let path = Path::new(base);
        let mut target = format!("{base}/{physical_name}");
        if !self.is_object_store()
            && path.is_dir()
            && !Path::new(&target).exists()
            && let Ok(entries) = std::fs::read_dir(path)
        {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_stem().and_then(|s| s.to_str()) == Some(physical_name))
                .collect();
            found.sort();
            if let Some(first) = found.first() {
                target = first.display().to_string();
            }
        }
        let format = Format::from_extension(&target).unwrap_or(self.format);
        Location {
            target,
            format,
            ..self.clone()
        }
    }
}

fn detect(path: &str) -> Result<Format, EngineError> {
    if let Some(f) = Format::from_extension(path.trim_end_matches('/')) {
        return Ok(f);
    }
    let p = Path::new(path);
    if p.join("_delta_log").is_dir() {
        return Ok(Format::Delta);
    }
    if p.is_dir() {
        // A folder of files of one kind.
        if let Ok(entries) = std::fs::read_dir(p) {
            for entry in entries.flatten() {
                if let Some(f) = entry.path().to_str().and_then(Format::from_extension) {
                    return Ok(f);
                }
            }
        }
    }
    Err(EngineError::UnknownFormat(format!(
        "{path} (give --format parquet|csv|json|delta)"
    )))
}

/// A relative path against the contract's folder if anything is there, else as given (the
/// current folder).
fn resolve_local(path: &str, base: &Path) -> String {
    let path = path.strip_prefix("file://").unwrap_or(path);
    if Path::new(path).is_absolute() {
        return path.to_owned();
    }
    let candidate = base.join(path);
    if exists(&candidate.display().to_string()) {
        return candidate.display().to_string();
    }
    path.to_owned()
}

/// Whether a local path or glob matches anything.
fn exists(path: &str) -> bool {
    if !path.contains(['*', '?', '[']) {
        return Path::new(path).exists();
    }
    // The folder part of a glob exists and holds a matching name.
    let (dir, pattern) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (".", path),
    };
    let Ok(re) = regex::Regex::new(&glob_to_regex(pattern)) else {
        return false;
    };
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_str().is_some_and(|n| re.is_match(n)))
        })
        .unwrap_or(false)
}

fn glob_to_regex(glob: &str) -> String {
    let mut re = String::from("^");
    for ch in glob.chars() {
        match ch {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c if "\\.+()|{}^$[]".contains(c) => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

/// The bytes of the local files a path, folder or glob names.
fn local_size(target: &str) -> u64 {
    local_files(target, "")
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Registers `location` as table `name`.
pub async fn register(
    ctx: &SessionContext,
    name: &str,
    location: &Location,
    progress: Option<&Arc<Progress>>,
) -> Result<(), EngineError> {
    if location.is_object_store() {
        register_object_store(ctx, location, progress)?;
    } else if !exists(location.target.trim_start_matches("file://")) {
        return Err(EngineError::NoData {
            target: location.target.clone(),
        });
    } else if let Some(progress) = progress {
        progress.add_total(local_size(location.target.trim_start_matches("file://")));
    }
    if location.is_object_store() && location.target.contains('*') {
        return register_object_glob(ctx, name, location).await;
    }
    let table_path = location.target.as_str();
    let ext = |default: &'static str| -> String {
        // A single file is read whatever its extension; folders and globs filter by the pattern.
        if Path::new(table_path).is_file() || table_path.contains('*') {
            Path::new(table_path)
                .extension()
                .and_then(|e| e.to_str())
                .map_or(String::new(), |e| format!(".{e}"))
        } else {
            default.to_owned()
        }
    };
    let result = match location.format {
        Format::Parquet => {
            let ext = ext(".parquet");
            ctx.register_parquet(
                name,
                table_path,
                ParquetReadOptions::default().file_extension(&ext),
            )
            .await
        }
        Format::Csv { delimiter } => {
            let ext = ext(".csv");
            let options = CsvReadOptions::new()
                .has_header(true)
                .delimiter(delimiter)
                .file_extension(&ext);
            if !location.is_object_store()
                && let Some(files) = files_with_different_headers(table_path, &ext, delimiter)
            {
                return register_csv_by_name(ctx, name, &files, delimiter, location).await;
            }
            // Infer the header, then read every column as text.
            let inferred = ctx
                .read_csv(table_path, options.clone())
                .await
                .map_err(|e| read_error(location, e))?;
            let text_schema = Schema::new(
                inferred
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            ctx.register_csv(name, table_path, options.schema(&text_schema))
                .await
        }
        Format::Json {
            newline_delimited: false,
        } if Path::new(table_path).is_file() => {
            return register_json_array(ctx, name, location);
        }
        Format::Json { newline_delimited } => {
            let ext = ext(".json");
            let mut options = JsonReadOptions::default().file_extension(&ext);
            options.newline_delimited = newline_delimited;
            ctx.register_json(name, table_path, options).await
        }
        Format::Delta => return register_delta(ctx, name, location).await,
    };
    result.map_err(|e| read_error(location, e))
}

/// The files of a local folder or glob when their CSV headers differ (files written before and
/// after a column was added); `None` when one header serves them all.
fn files_with_different_headers(target: &str, ext: &str, delimiter: u8) -> Option<Vec<PathBuf>> {
    let files = local_files(target, ext);
    if files.len() < 2 {
        return None;
    }
    let headers: Vec<Option<Vec<String>>> =
        files.iter().map(|f| csv_header(f, delimiter)).collect();
    let first = &headers[0];
    headers.iter().any(|h| h != first).then_some(files)
}

/// The files a local folder or glob (in its last segment) names, sorted.
fn local_files(target: &str, ext: &str) -> Vec<PathBuf> {
    let path = Path::new(target);
    let (dir, re) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if target.contains(['*', '?']) {
        let (dir, pattern) = target.rsplit_once('/').unwrap_or((".", target));
        (
            PathBuf::from(dir),
            regex::Regex::new(&glob_to_regex(pattern)).ok(),
        )
    } else {
        return vec![path.to_path_buf()];
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    match &re {
                        Some(re) => re.is_match(name),
                        None => name.ends_with(ext),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The column names in a CSV file's first line (simple quoting).
fn csv_header(path: &Path, delimiter: u8) -> Option<Vec<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    let line = line
        .trim_end_matches(['\r', '\n'])
        .trim_start_matches('\u{feff}');
    Some(
        line.split(delimiter as char)
            .map(|c| c.trim().trim_matches('"').to_owned())
            .collect(),
    )
}

/// Registers CSV files with different headers as one table, columns matched by name (a file
/// without a column reads it as null).
async fn register_csv_by_name(
    ctx: &SessionContext,
    name: &str,
    files: &[PathBuf],
    delimiter: u8,
    location: &Location,
) -> Result<(), EngineError> {
    use datafusion::logical_expr::{cast, ident, lit};
    let mut columns: Vec<String> = Vec::new();
    let headers: Vec<Vec<String>> = files
        .iter()
        .map(|f| csv_header(f, delimiter).unwrap_or_default())
        .collect();
    for header in &headers {
        for c in header {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let mut union: Option<datafusion::prelude::DataFrame> = None;
    for (file, header) in files.iter().zip(&headers) {
        let schema = Schema::new(
            header
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .map_or(String::new(), |e| format!(".{e}"));
        let options = CsvReadOptions::new()
            .has_header(true)
            .delimiter(delimiter)
            .file_extension(&ext)
            .schema(&schema);
        let path = file.display().to_string();
        let df = ctx
            .read_csv(path.as_str(), options)
            .await
            .map_err(|e| read_error(location, e))?;
        let select = columns
            .iter()
            .map(|c| {
                if header.contains(c) {
                    ident(c.clone())
                } else {
                    cast(
                        lit(datafusion::common::ScalarValue::Utf8(None)),
                        DataType::Utf8,
                    )
                    .alias(c)
                }
            })
            .collect::<Vec<_>>();
        let df = df.select(select).map_err(|e| read_error(location, e))?;
        union = Some(match union {
            None => df,
            Some(u) => u.union(df).map_err(|e| read_error(location, e))?,
        });
    }
    let df = union.ok_or_else(|| EngineError::NoData {
        target: location.target.clone(),
    })?;
    ctx.register_table(name, df.into_view())
        .map_err(|e| read_error(location, e))?;
    Ok(())
}

/// Registers the objects an object-store glob (`s3://bucket/parts/*.csv`) names: DataFusion expands
/// globs only in local paths, so the objects under the glob's prefix are listed and matched here.
async fn register_object_glob(
    ctx: &SessionContext,
    name: &str,
    location: &Location,
) -> Result<(), EngineError> {
    use datafusion::datasource::file_format::options::ReadOptions;
    use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
    use futures::TryStreamExt;

    let bad = |reason: String| location.bad(reason);
    let (root, pattern) = match location
        .target
        .split_once("://")
        .and_then(|(scheme, rest)| {
            rest.split_once('/')
                .map(|(bucket, path)| (format!("{scheme}://{bucket}"), path.to_owned()))
        }) {
        Some(parts) => parts,
        None => return Err(bad("expected scheme://bucket/path".to_owned())),
    };
    let prefix = pattern[..pattern.find('*').unwrap_or(pattern.len())]
        .rsplit_once('/')
        .map_or("", |(p, _)| p)
        .to_owned();
    let re = regex::Regex::new(&glob_to_regex(&pattern)).map_err(|e| bad(e.to_string()))?;
    let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(&root)
        .map_err(|e| bad(e.to_string()))?;
    let store = ctx
        .runtime_env()
        .object_store(&store_url)
        .map_err(|e| bad(e.to_string()))?;
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&object_store::path::Path::from(prefix.as_str())))
        .try_collect()
        .await
        .map_err(|e| bad(e.to_string()))?;
    let mut urls = Vec::new();
    for meta in listed.iter().filter(|m| re.is_match(m.location.as_ref())) {
        urls.push(
            ListingTableUrl::parse(format!("{root}/{}", meta.location))
                .map_err(|e| bad(e.to_string()))?,
        );
    }
    if urls.is_empty() {
        return Err(EngineError::NoData {
            target: location.target.clone(),
        });
    }
    let ext = pattern
        .rsplit_once('.')
        .map_or(String::new(), |(_, e)| format!(".{e}"));
    let (config, table_options) = (ctx.copied_config(), ctx.copied_table_options());
    let options = match location.format {
        Format::Parquet => ParquetReadOptions::default()
            .file_extension(&ext)
            .to_listing_options(&config, table_options),
        Format::Csv { delimiter } => CsvReadOptions::new()
            .has_header(true)
            .delimiter(delimiter)
            .file_extension(&ext)
            .to_listing_options(&config, table_options),
        Format::Json { newline_delimited } => {
            let mut json = JsonReadOptions::default().file_extension(&ext);
            json.newline_delimited = newline_delimited;
            json.to_listing_options(&config, table_options)
        }
        Format::Delta => return Err(bad("a Delta table is a folder, not a glob".to_owned())),
    };
    let inferred = ListingTableConfig::new_with_multi_paths(urls.clone())
        .with_listing_options(options.clone())
        .infer_schema(&ctx.state())
        .await
        .map_err(|e| read_error(location, e))?;
    let config = if location.format.text_read() == Some(TextRead::AllColumns) {
        let schema = inferred
            .file_schema
            .clone()
            .ok_or_else(|| bad("no schema".to_owned()))?;
        let text = Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::new(text))
    } else {
        inferred
    };
    let table = ListingTable::try_new(config).map_err(|e| read_error(location, e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| read_error(location, e))?;
    Ok(())
}

/// Registers a local file holding one JSON array of objects. DataFusion's array reader fails on
/// pretty-printed (multi-line) arrays, so the array is read here, one object per row, into memory
/// (an array cannot be streamed anyway; large data should be NDJSON or Parquet).
fn register_json_array(
    ctx: &SessionContext,
    name: &str,
    location: &Location,
) -> Result<(), EngineError> {
    use datafusion::arrow::json::ReaderBuilder;
    use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
    let bad = |reason: String| location.bad(reason);
    let text = std::fs::read_to_string(&location.target).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let rows = match value {
        serde_json::Value::Array(rows) => rows,
        _ => {
            return Err(bad(
                "expected a JSON array of objects (delimiter: array)".to_owned()
            ));
        }
    };
    let schema = Arc::new(
        infer_json_schema_from_iterator(rows.iter().map(Ok)).map_err(|e| bad(e.to_string()))?,
    );
    const BATCH: usize = 8192;
    let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(BATCH)
        .build_decoder()
        .map_err(|e| bad(e.to_string()))?;
    let mut batches = Vec::new();
    for chunk in rows.chunks(BATCH) {
        decoder.serialize(chunk).map_err(|e| bad(e.to_string()))?;
        if let Some(batch) = decoder.flush().map_err(|e| bad(e.to_string()))? {
            batches.push(batch);
        }
    }
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])
        .map_err(|e| read_error(location, e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| read_error(location, e))?;
    Ok(())
}

/// Registers the current version of a Delta table (its log decides which Parquet files count).
async fn register_delta(
    ctx: &SessionContext,
    name: &str,
    location: &Location,
) -> Result<(), EngineError> {
    let bad = |reason: String| location.bad(reason);
    let url = if location.is_object_store() {
        url::Url::parse(&location.target).map_err(|e| bad(e.to_string()))?
    } else {
        let path = std::fs::canonicalize(location.target.trim_start_matches("file://"))
            .map_err(|e| bad(e.to_string()))?;
        url::Url::from_directory_path(&path).map_err(|()| bad("not an absolute path".to_owned()))?
    };
    let table = if location.is_object_store() {
        // S3: deltalake's own store, configured like ours (endpoint from the contract, keys from AWS_*).
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
        let mut options = std::collections::HashMap::new();
        if let Some(endpoint) = &location.endpoint {
            options.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.clone());
            if endpoint.starts_with("http://") {
                options.insert("AWS_ALLOW_HTTP".to_owned(), "true".to_owned());
            }
        }
        deltalake::open_table_with_storage_options(url.clone(), options).await
    } else {
        deltalake::open_table(url.clone()).await
    }
    .map_err(|e| bad(format!("not a readable Delta table: {e}")))?;
    // A log may name files anywhere (`../other/part-0.parquet`, an absolute path, another
    // bucket): a source table reads only its own folder's, links resolved.
    let local_root = (!location.is_object_store())
        .then(|| url.to_file_path().ok())
        .flatten();
    let root = url.as_str().trim_end_matches('/').to_owned() + "/";
    let state = table
        .snapshot()
        .map_err(|e| bad(format!("not a readable Delta table: {e}")))?;
    for file in state.log_data() {
        let name = file.path();
        let climbs = |rest: &str| rest.split('/').any(|part| part == ".." || part == ".");
        let inside = if let Some(rest) = name.strip_prefix(&root) {
            !climbs(rest)
        } else {
            !name.contains("://") && !name.starts_with('/') && !climbs(&name)
        };
        // Where a link leads (a file that is gone fails when it is read).
        let linked_out = local_root.as_ref().is_some_and(|dir| {
            let relative = name.strip_prefix(&root).unwrap_or(&name);
            std::fs::canonicalize(dir.join(relative)).is_ok_and(|real| !real.starts_with(dir))
        });
        if !inside || linked_out {
            return Err(bad(format!(
                "its log names {name}, outside the table's folder; a source table reads only its own files"
            )));
        }
    }
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| bad(e.to_string()))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| bad(e.to_string()))?;
    ctx.register_table(name, provider)
        .map_err(|e| read_error(location, e))?;
    Ok(())
}

pub(crate) fn register_object_store(
    ctx: &SessionContext,
    location: &Location,
    progress: Option<&Arc<Progress>>,
) -> Result<(), EngineError> {
    let url = url::Url::parse(&location.target).map_err(|e| location.bad(e.to_string()))?;
    match url.scheme() {
        "s3" | "s3a" => {
            let bucket = url.host_str().unwrap_or_default();
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &location.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let store = builder.build().map_err(|e| location.bad(e.to_string()))?;
            let root = url::Url::parse(&format!("{}://{bucket}", url.scheme()))
                .map_err(|e| location.bad(e.to_string()))?;
            let store: Arc<dyn object_store::ObjectStore> = Arc::new(store);
            let store: Arc<dyn object_store::ObjectStore> = match progress {
                Some(p) => Arc::new(Metered::new(store, Arc::clone(p))),
                None => store,
            };
            ctx.register_object_store(&root, store);
            Ok(())
        }
        other => Err(location.bad(format!(
            "`{other}://` is not supported; use a local path or s3://"
        ))),
    }
}

/// `location` could not be read as its format.
fn read_error(location: &Location, source: datafusion::error::DataFusionError) -> EngineError {
    EngineError::Read {
        target: location.target.clone(),
        format: location.format.name(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Format::from_extension("a/b.PARQUET"), Some(Format::Parquet));
        assert_eq!(
            Format::from_name("csv", Some(";")),
            Some(Format::Csv { delimiter: b';' })
        );
        assert_eq!(
            Format::from_name("json", Some("array")),
            Some(Format::Json {
                newline_delimited: false
            })
        );
        assert_eq!(
            Format::from_name("json", Some("new_line")),
            Some(Format::Json {
                newline_delimited: true
            })
        );
    }

    #[test]
    fn globs() {
        let re = regex::Regex::new(&glob_to_regex("cities-version-*.json")).expect("regex");
        assert!(re.is_match("cities-version-1.json"));
        assert!(!re.is_match("cities-version-1.csv"));
    }
}
