//! Errors of the data plane, each naming what the user can fix.

use crate::source::Location;

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
        "server `{server}` is of type `{server_type}`, which `mesh test` does not read yet (it reads `local` and `s3`); pass the data with --data PATH"
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
}

impl EngineError {
    pub(crate) fn read(location: &Location, source: datafusion::error::DataFusionError) -> Self {
        EngineError::Read {
            target: location.target.clone(),
            format: location.format.name(),
            source,
        }
    }
}
