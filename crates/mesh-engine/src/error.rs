//! Errors of the data plane, each naming what the user can fix — and, for a query, whose fault
//! it is: the query's (a 4xx: the caller fixes it), the data's or the platform's (a 5xx).

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown data format `{0}`")]
    UnknownFormat(String),

    #[error("server `{server}` has no `{missing}`")]
    ServerIncomplete {
        server: String,
        missing: &'static str,
    },

    #[error(
        "server `{server}` is of type `{server_type}`, which `mesh test` does not read yet (it reads `local`, `s3`, `postgres`, `mysql` and `custom` with `format: sqlite`); pass the data with --data PATH"
    )]
    UnsupportedServer { server: String, server_type: String },

    #[error("the contract has no servers; pass the data with --data PATH")]
    NoServer,

    #[error("the contract has no server `{name}` (servers: {known})")]
    UnknownServer { name: String, known: String },

    #[error("the contract has no schema object `{name}` (objects: {known})")]
    UnknownModel { name: String, known: String },

    #[error("no data at {target}")]
    NoData { target: String },

    #[error("cannot read {target}: {reason}")]
    BadLocation { target: String, reason: String },

    #[error("cannot read {target} as {format}: {source}")]
    Read {
        target: String,
        format: &'static str,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),

    #[error("{0}")]
    Database(crate::db::DbError),
}

/// A Delta table that could not be opened, read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the Delta table at {location}: {reason}")]
pub struct DeltaError {
    pub location: String,
    pub reason: String,
}

impl DeltaError {
    pub(crate) fn at(location: &str) -> impl Fn(deltalake::DeltaTableError) -> DeltaError + '_ {
        move |e| DeltaError {
            location: location.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// Why a governed query failed, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query's: it does not parse or plan (a refused statement, an unknown table or column),
    /// or cannot be computed (a bad cast, a division by zero). The caller fixes it.
    #[error("{0}")]
    Invalid(String),
    /// It needs more than a query may have (memory).
    #[error("{0}")]
    Resources(String),
    /// The data's: a port's table could not be opened or read (storage unreachable, a file gone,
    /// a corrupt file, the Delta log). It counts against the port's availability.
    #[error("the data could not be read: {reason}")]
    Data {
        /// The table, when known.
        location: Option<String>,
        reason: String,
    },
    /// The platform's (an engine bug, an encoder failure).
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// A DataFusion error, by whose fault it is.
    pub fn of(e: datafusion::error::DataFusionError) -> QueryError {
        use datafusion::error::DataFusionError as E;
        if is_storage_error(&e) {
            return QueryError::Data {
                location: None,
                reason: e.to_string(),
            };
        }
        match e.find_root() {
            E::ResourcesExhausted(_) => QueryError::Resources(e.to_string()),
            E::Internal(_) => QueryError::Internal(e.to_string()),
            _ => QueryError::Invalid(e.to_string()),
        }
    }

    /// The data's fault (or the storage's): counted against the ports read.
    pub fn is_data(&self) -> bool {
        matches!(self, QueryError::Data { .. })
    }
}

impl From<DeltaError> for QueryError {
    fn from(e: DeltaError) -> QueryError {
        QueryError::Data {
            location: Some(e.location),
            reason: e.reason,
        }
    }
}

/// Whether a failed read is the data's fault (a file gone, storage unreachable, a corrupt
/// Parquet file, the Delta log) rather than the query's (a bad cast, a division by zero, memory):
/// only those count against a port's availability.
pub fn is_storage_error(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError as E;
    use datafusion::parquet::errors::ParquetError;
    match e.find_root() {
        // A filter pushed into the Parquet reader fails inside it: a bad cast or a division
        // by zero there is still the query's.
        E::ParquetError(p) => match p.as_ref() {
            ParquetError::External(inner) => !computed(inner.as_ref()),
            _ => true,
        },
        E::External(inner) => !computed(inner.as_ref()),
        E::ObjectStore(_) | E::IoError(_) => true,
        E::ArrowError(a, _) => matches!(
            a.as_ref(),
            ArrowError::IoError(..) | ArrowError::ExternalError(_) | ArrowError::ParquetError(_)
        ),
        _ => false,
    }
}

/// Whether `e` (wrapped by a reader) is an error of computing over the data — a cast, a division,
/// an overflow — rather than of reading it.
fn computed(e: &(dyn std::error::Error + 'static)) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError as E;
    if let Some(a) = e.downcast_ref::<ArrowError>() {
        return match a {
            ArrowError::ComputeError(_)
            | ArrowError::CastError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_) => true,
            ArrowError::ExternalError(inner) => computed(inner.as_ref()),
            _ => false,
        };
    }
    if let Some(d) = e.downcast_ref::<E>() {
        return !is_storage_error(d);
    }
    false
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError as E;
    use datafusion::parquet::errors::ParquetError;

    use super::*;

    #[test]
    fn a_bad_cast_inside_the_parquet_reader_is_the_querys_fault() {
        // As the Parquet reader reports a pushed-down filter that fails.
        let cast = ArrowError::ComputeError(
            "Error evaluating filter predicate: ArrowError(CastError(\"Cannot cast string 'x' to value of Int64 type\"))".into(),
        );
        let pushed = E::ParquetError(Box::new(ParquetError::External(Box::new(cast))));
        assert!(!is_storage_error(&pushed));
        assert!(matches!(QueryError::of(pushed), QueryError::Invalid(_)));
        let wrapped = E::External(Box::new(E::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        )));
        assert!(!is_storage_error(&wrapped));
        // A file that is not Parquet, storage that fails: the data's.
        let corrupt = E::ParquetError(Box::new(ParquetError::EOF("truncated".into())));
        assert!(is_storage_error(&corrupt));
        let gone = E::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        }));
        assert!(is_storage_error(&gone));
        let io = E::External(Box::new(std::io::Error::other("reset")));
        assert!(is_storage_error(&io));
    }
}
