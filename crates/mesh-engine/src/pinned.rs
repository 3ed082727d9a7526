//! A Delta table at a pinned version, as the Parquet files it is made of: the table a
//! distributed executor reads.
//!
//! delta-rs's own table provider reads through its log store and its scan plan has no
//! serialized form, so it cannot be sent to another process. [`PinnedFiles`] is resolved once,
//! in the submitting process, from the snapshot's add actions: each file's path, size and
//! partition values. Its scan is DataFusion's plain Parquet scan with the partition values as
//! constant columns, which Ballista ships to executors as it is; only the list of files crosses
//! to the scheduler (see `cluster::MeshLogicalCodec`), so the scheduler never reads the Delta log.
//!
//! Deletion vectors and column mapping change what a file's rows mean; a snapshot that uses them
//! is refused here rather than read wrong.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat as _;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};

/// One data file of the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedFile {
    /// The file's path in its object store (no scheme, no bucket).
    pub path: String,
    pub size: u64,
    /// The values of the table's partition columns, in their order, as Delta writes them
    /// (`None`: null).
    pub partition_values: Vec<Option<String>>,
}

/// The serialized form: what the scheduler needs besides the schema, which the plan carries.
#[derive(Debug, Serialize, Deserialize)]
struct Listing {
    store: String,
    partition_columns: Vec<String>,
    files: Vec<PinnedFile>,
}

/// A snapshot's files, readable by any process that can reach their object store.
#[derive(Debug, Clone)]
pub struct PinnedFiles {
    /// The data columns, then the partition columns: the order of a file scan's output.
    schema: SchemaRef,
    /// How many of `schema`'s fields are in the files.
    file_columns: usize,
    /// `s3://bucket` or `file://`.
    store: ObjectStoreUrl,
    files: Vec<PinnedFile>,
    /// Each file's partition values in their columns' types (checked once, when the files are
    /// resolved or decoded).
    values: Vec<Vec<ScalarValue>>,
    /// The columns in the order the table shows them (partition columns where they belong).
    columns: Vec<String>,
}

/// Why a snapshot cannot be read as plain files.
fn refused(reason: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(reason.into())
}

impl PinnedFiles {
    /// The files of `table` at the version it is loaded at.
    pub fn of(table: &DeltaTable) -> Result<PinnedFiles> {
        let delta = |e: deltalake::DeltaTableError| DataFusionError::External(Box::new(e));
        let snapshot = table.snapshot().map_err(delta)?;
        let configuration = snapshot.metadata().configuration();
        if let Some(mode) = configuration.get("delta.columnMapping.mode")
            && mode != "none"
        {
            return Err(refused(format!(
                "the table uses column mapping ({mode}), which a distributed executor cannot read yet; run in process"
            )));
        }
        let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let table_schema = snapshot.snapshot().arrow_schema();
        let mut files = Vec::new();
        for file in snapshot.log_data() {
            if file.deletion_vector_descriptor().is_some() {
                return Err(refused(
                    "the table has deletion vectors, which a distributed executor cannot read yet; run in process",
                ));
            }
            let uri = table.log_store().to_uri(&file.object_store_path());
            files.push((uri, file.size(), file.partition_values_map()));
        }
        PinnedFiles::from_parts(&table_schema, &partition_columns, files)
    }

    /// The files a run staged (its add actions, not committed yet) in the table at `root`, with
    /// the output's `schema`: what the contract's checks read back from a streamed output.
    pub fn staged(
        root: &str,
        actions: &[deltalake::kernel::Action],
        schema: &SchemaRef,
        partition_columns: &[String],
    ) -> Result<PinnedFiles> {
        let root = root.trim_end_matches('/');
        let files = actions
            .iter()
            .filter_map(|a| match a {
                deltalake::kernel::Action::Add(add) => Some((
                    format!("{root}/{}", add.path),
                    add.size,
                    add.partition_values.clone(),
                )),
                _ => None,
            })
            .collect();
        PinnedFiles::from_parts(schema, partition_columns, files)
    }

    /// Files given by URI, size and partition values (`column -> value`) of a table of `schema`.
    fn from_parts(
        schema: &SchemaRef,
        partition_columns: &[String],
        uris: Vec<(
            String,
            i64,
            std::collections::HashMap<String, Option<String>>,
        )>,
    ) -> Result<PinnedFiles> {
        let mut fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .cloned()
            .collect();
        let file_columns = fields.len();
        for name in partition_columns {
            let field = schema.field_with_name(name)?;
            fields.push(Arc::new(Field::new(name, field.data_type().clone(), true)));
        }
        let mut store: Option<ObjectStoreUrl> = None;
        let mut files = Vec::with_capacity(uris.len());
        for (uri, size, mut values) in uris {
            let url = ListingTableUrl::parse(&uri)?;
            let here = url.object_store();
            match &store {
                None => store = Some(here),
                Some(s) if *s == here => {}
                Some(s) => {
                    return Err(refused(format!(
                        "the table's files are in two stores ({} and {}); run in process",
                        s.as_str(),
                        here.as_str()
                    )));
                }
            }
            files.push(PinnedFile {
                path: url.prefix().to_string(),
                size: u64::try_from(size).unwrap_or(0),
                partition_values: partition_columns
                    .iter()
                    .map(|c| values.remove(c).flatten())
                    .collect(),
            });
        }
        PinnedFiles {
            schema: Arc::new(Schema::new(fields)),
            file_columns,
            // No files: any store will do, nothing is read.
            store: store.unwrap_or_else(ObjectStoreUrl::local_filesystem),
            files,
            values: Vec::new(),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        }
        .typed()
    }

    /// The table in its own column order, as a transform or a check reads it (the provider's
    /// schema puts partition columns last, as a file scan produces them).
    pub fn into_table(self, ctx: &SessionContext) -> Result<Arc<dyn TableProvider>> {
        let columns = self.columns.clone();
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        Ok(ctx
            .read_table(Arc::new(self))?
            .select_columns(&columns)?
            .into_view())
    }

    /// Types the files' partition values: a value its column's type cannot hold is refused.
    fn typed(mut self) -> Result<PinnedFiles> {
        let partitions = &self.schema.fields()[self.file_columns..];
        self.values = self
            .files
            .iter()
            .map(|file| {
                partitions
                    .iter()
                    .zip(&file.partition_values)
                    .map(|(field, value)| match value {
                        None => ScalarValue::try_from(field.data_type()),
                        Some(v) => ScalarValue::try_from_string(v.clone(), field.data_type())
                            .map_err(|e| {
                                refused(format!(
                                    "partition value {v:?} of `{}` in {}: {e}",
                                    field.name(),
                                    file.path
                                ))
                            }),
                    })
                    .collect()
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// The form the scheduler receives (with the schema, which the plan carries).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let listing = Listing {
            store: self.store.as_str().to_owned(),
            partition_columns: self.schema.fields()[self.file_columns..]
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            files: self.files.clone(),
        };
        serde_json::to_vec(&listing).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Reads what [`encode`](Self::encode) wrote, for a table of `schema`.
    pub fn decode(buf: &[u8], schema: SchemaRef) -> Result<PinnedFiles> {
        let listing: Listing =
            serde_json::from_slice(buf).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let partitions = listing.partition_columns.len();
        let file_columns = schema
            .fields()
            .len()
            .checked_sub(partitions)
            .ok_or_else(|| {
                refused("a pinned table with more partition columns than columns".to_owned())
            })?;
        let tail: Vec<&String> = schema.fields()[file_columns..]
            .iter()
            .map(|f| f.name())
            .collect();
        if tail != listing.partition_columns.iter().collect::<Vec<_>>()
            || listing
                .files
                .iter()
                .any(|f| f.partition_values.len() != partitions)
        {
            return Err(refused(
                "a pinned table whose partition columns do not match its schema".to_owned(),
            ));
        }
        PinnedFiles {
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            schema,
            file_columns,
            store: ObjectStoreUrl::parse(&listing.store)?,
            files: listing.files,
            values: Vec::new(),
        }
        .typed()
    }
}

#[async_trait::async_trait]
impl TableProvider for PinnedFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let file_schema = Arc::new(Schema::new(
            self.schema.fields()[..self.file_columns].to_vec(),
        ));
        let source = format.file_source(
            TableSchema::builder(file_schema)
                .with_table_partition_cols(self.schema.fields()[self.file_columns..].to_vec())
                .build(),
        );
        // Files spread over the session's partitions, biggest first onto the lightest group.
        let groups_wanted = state.config().target_partitions().max(1);
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.files[i].size));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = Vec::new();
        for i in order {
            let file = &self.files[i];
            let partitioned = PartitionedFile::new(file.path.clone(), file.size)
                .with_partition_values(self.values[i].clone());
            if groups.len() < groups_wanted {
                groups.push((file.size, vec![partitioned]));
            } else if let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
                lightest.0 += file.size;
                lightest.1.push(partitioned);
            }
        }
        let config = FileScanConfigBuilder::new(self.store.clone(), source)
            .with_file_groups(groups.into_iter().map(|(_, g)| FileGroup::new(g)).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("day", DataType::Date32, true),
        ]))
    }

    #[test]
    fn round_trips_and_types_partition_values() {
        let pinned = PinnedFiles {
            schema: schema(),
            file_columns: 1,
            store: ObjectStoreUrl::parse("s3://bucket").unwrap(),
            files: vec![
                PinnedFile {
                    path: "t/day=2026-12-01/a.parquet".into(),
                    size: 10,
                    partition_values: vec![Some("2026-12-01".into())],
                },
                PinnedFile {
                    path: "t/day=__HIVE_DEFAULT_PARTITION__/b.parquet".into(),
                    size: 20,
                    partition_values: vec![None],
                },
            ],
            values: Vec::new(),
            columns: vec!["id".into(), "day".into()],
        };
        let back = PinnedFiles::decode(&pinned.encode().unwrap(), schema()).unwrap();
        assert_eq!(back.files, pinned.files);
        assert_eq!(back.store, pinned.store);
        assert_eq!(
            back.values,
            vec![
                vec![ScalarValue::Date32(Some(20788))],
                vec![ScalarValue::Date32(None)]
            ]
        );
        assert_eq!(back.files.iter().map(|f| f.size).sum::<u64>(), 30);
    }

    #[test]
    fn refuses_listings_that_do_not_fit_their_schema() {
        let listing = |columns: &[&str], values: usize| {
            serde_json::to_vec(&serde_json::json!({
                "store": "file://",
                "partition_columns": columns,
                "files": [{"path": "a", "size": 1, "partition_values": vec![serde_json::Value::Null; values]}],
            }))
            .unwrap()
        };
        assert!(PinnedFiles::decode(&listing(&["day"], 1), schema()).is_ok());
        for bad in [
            listing(&["id"], 1),
            listing(&["day"], 2),
            listing(&["a", "b", "c"], 3),
        ] {
            assert!(PinnedFiles::decode(&bad, schema()).is_err());
        }
        assert!(PinnedFiles::decode(b"{not json", schema()).is_err());
        let wrong_type = serde_json::to_vec(&serde_json::json!({
            "store": "file://",
            "partition_columns": ["day"],
            "files": [{"path": "a", "size": 1, "partition_values": ["not a date"]}],
        }))
        .unwrap();
        assert!(PinnedFiles::decode(&wrong_type, schema()).is_err());
    }
}
