//! Arrow Flight SQL, served on the same port as the HTTP API (gRPC over HTTP/2), so BI tools and
//! ADBC/JDBC drivers read output ports directly. It is the same governed read as
//! `POST /api/v1/query`: the caller's token decides which ports exist, grants decide which
//! columns are masked, every read is recorded, and the same rate limits and timeout apply.
//!
//! Authentication: `authorization: Bearer <token>` on every call, or a handshake with basic
//! auth whose password is the token (the handshake answers with the bearer header to use).
//! Read-only: updates, ingestion, Substrait plans and transactions are refused.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use futures::{Stream, StreamExt};
use mesh_catalog::{Principal, ToProblem};
use mesh_engine::query::arrow::datatypes::Schema;
use mesh_engine::query::arrow::ipc::writer::IpcWriteOptions;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use mesh_service::Service;
use mesh_service::limits::Limits;

use crate::ApiError;
use crate::query::{Cut, until};

/// The catalog and schemas Flight SQL clients see: catalog `mesh`, one schema per domain.
const CATALOG: &str = "mesh";

type DoGetStream = <FlightSql as FlightService>::DoGetStream;

#[derive(Debug, Clone)]
pub(crate) struct FlightSql {
    pub(crate) auth: crate::idp::Authenticator,
    pub(crate) service: Service,
    pub(crate) limits: Arc<Limits>,
}

/// A failure as a gRPC status, with the same code and detail as the HTTP problem (and, for the
/// platform's own failures, the same logged error id).
fn status(e: impl ToProblem) -> Status {
    api_status(ApiError::of(&e))
}

fn api_status(e: ApiError) -> Status {
    let message = format!("{}: {}", e.code(), e.detail());
    match e.status.as_u16() {
        400 | 422 => Status::invalid_argument(message),
        401 => Status::unauthenticated(message),
        403 => Status::permission_denied(message),
        404 => Status::not_found(message),
        408 => Status::deadline_exceeded(message),
        409 => Status::failed_precondition(message),
        429 => Status::resource_exhausted(message),
        503 => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl FlightSql {
    /// The caller of a request, from its `authorization: Bearer <token>` header.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let value = request.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated(
                "unauthenticated: Flight SQL calls need a token: the header `authorization: \
                 Bearer <token>`, or a handshake with basic auth whose password is the token",
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "unauthenticated: the authorization header must be `Bearer <token>`",
                )
            })?;
        let who = self.auth.authenticate(token).await.map_err(api_status)?;
        // Every call counts, so that no call (metadata, planning, a refused statement) can be
        // made without bound.
        self.limits.call(&who.name).await.map_err(status)?;
        Ok(who)
    }

    /// Runs `sql` for the caller of `request` and streams the result as Flight data.
    async fn read<T>(&self, request: &Request<T>, sql: &str) -> Result<DoGetStream, Status> {
        let who = self.caller(request).await?;
        self.limits.take(&who.name).await.map_err(status)?;
        let deadline = tokio::time::Instant::now() + self.limits.limits.timeout;
        let read = tokio::time::timeout_at(deadline, self.service.read(&who, sql))
            .await
            .map_err(|_| status(self.limits.timed_out()))?
            .map_err(status)?;
        let timed_out = self.limits.timed_out();
        let batches = until(read.batches, deadline).map(move |item| {
            item.map_err(|cut| match cut {
                Cut::Failed(e) => FlightError::Tonic(Box::new(status(e))),
                Cut::TimedOut => FlightError::Tonic(Box::new(status(timed_out.clone()))),
            })
        });
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(read.schema)
            .build(batches)
            .map(|item| item.map_err(Status::from));
        Ok(Box::pin(stream))
    }

    /// The FlightInfo of `sql`: its schema as the caller would see it, and `ticket` to fetch it.
    async fn statement_info(
        &self,
        request: Request<FlightDescriptor>,
        sql: &str,
        ticket: Vec<u8>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = self.caller(&request).await?;
        let deadline = tokio::time::Instant::now() + self.limits.limits.timeout;
        let schema = tokio::time::timeout_at(deadline, self.service.read_schema(&who, sql))
            .await
            .map_err(|_| status(self.limits.timed_out()))?
            .map_err(status)?;
        info(&schema, ticket, request.into_inner())
    }

    /// The FlightInfo of a metadata command, for an authenticated caller: the command's result
    /// schema, and the command itself as the ticket.
    async fn described(
        &self,
        request: Request<FlightDescriptor>,
        schema: mesh_engine::query::SchemaRef,
        command: Vec<u8>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        info(&schema, command, request.into_inner())
    }

    /// The ports the caller of `request` may read, as (domain, table) with the port.
    async fn readable<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Vec<mesh_catalog::access::ReadablePort>, Status> {
        let who = self.caller(request).await?;
        self.service.readable(&who).await.map_err(status)
    }
}

fn info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// One batch as a Flight data stream.
fn once<E: Send + 'static>(
    schema: mesh_engine::query::SchemaRef,
    batch: Result<mesh_engine::query::RecordBatch, E>,
) -> Response<DoGetStream>
where
    FlightError: From<E>,
{
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move {
            batch.map_err(FlightError::from)
        }))
        .map(|item| item.map_err(Status::from));
    Response::new(Box::pin(stream))
}

fn sql_of(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec())
        .map_err(|_| Status::invalid_argument("bad_request: the statement handle is not UTF-8"))
}

fn sql_info() -> Result<SqlInfoData, Status> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "mesh");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.build().map_err(internal)
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let token = if let Some(basic) = header.strip_prefix("Basic ") {
            // With or without its padding: some clients (ADBC) leave it off.
            let lenient = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let decoded = lenient
                .decode(basic.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Status::unauthenticated("unauthenticated: the basic auth header is not base64")
                })?;
            let (user, token) = decoded.split_once(':').unwrap_or(("", decoded.as_str()));
            let who = self
                .auth
                .authenticate(token.trim())
                .await
                .map_err(api_status)?;
            if !user.is_empty() && user != "token" && user != who.name {
                return Err(Status::unauthenticated(format!(
                    "unauthenticated: the token belongs to `{}`, not `{user}` (or use the user \
                     name `token`)",
                    who.name
                )));
            }
            token.trim().to_owned()
        } else if let Some(bearer) = header.strip_prefix("Bearer ") {
            self.auth
                .authenticate(bearer.trim())
                .await
                .map_err(api_status)?;
            bearer.trim().to_owned()
        } else {
            return Err(Status::unauthenticated(
                "unauthenticated: the handshake needs basic auth (any user name, the token as \
                 password) or `authorization: Bearer <token>`",
            ));
        };
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).map_err(internal)?;
        let output = futures::stream::iter([Ok(HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        })]);
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(output));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into_bytes().into(),
        };
        self.statement_info(request, &query.query, ticket.as_any().encode_to_vec())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = sql_of(&ticket.statement_handle)?;
        Ok(Response::new(self.read(&request, &sql).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let who = self.caller(&request).await?;
        let deadline = tokio::time::Instant::now() + self.limits.limits.timeout;
        let schema =
            tokio::time::timeout_at(deadline, self.service.read_schema(&who, &query.query))
                .await
                .map_err(|_| status(self.limits.timed_out()))?
                .map_err(status)?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(internal)?;
        // The handle is the statement itself: nothing is kept on the server, and every
        // execution is authorized again for whoever executes it.
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.caller(&request).await?;
        Ok(())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = sql_of(&cmd.prepared_statement_handle)?;
        self.statement_info(request, &sql, cmd.as_any().encode_to_vec())
            .await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = sql_of(&cmd.prepared_statement_handle)?;
        Ok(Response::new(self.read(&request, &sql).await?))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        let schema = query.into_builder().schema();
        self.described(request, schema, command).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        let schema = builder.schema();
        Ok(once(schema, builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        let schema = query.into_builder().schema();
        self.described(request, schema, command).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ports = self.readable(&request).await?;
        let mut domains: Vec<&str> = ports.iter().map(|p| p.domain.as_str()).collect();
        domains.sort_unstable();
        domains.dedup();
        let mut builder = query.into_builder();
        for domain in domains {
            builder.append(CATALOG, domain);
        }
        let schema = builder.schema();
        Ok(once(schema, builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        let schema = query.into_builder().schema();
        self.described(request, schema, command).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ports = self.readable(&request).await?;
        let include_schema = query.include_schema;
        let key = self
            .service
            .mask_key()
            .await
            .map_err(|e| status(mesh_service::ReadError::from(e)))?;
        let readable: Vec<mesh_engine::query::Readable> = ports
            .iter()
            .map(|p| mesh_service::read::readable(p, key))
            .collect();
        let schemas = if include_schema {
            let refs: Vec<&mesh_engine::query::Readable> = readable.iter().collect();
            mesh_engine::query::table_schemas(&refs)
                .await
                .map_err(|e| status(mesh_service::ReadError::from(e)))?
        } else {
            Vec::new()
        };
        let empty = Schema::empty();
        let mut builder = query.into_builder();
        for (i, r) in readable.iter().enumerate() {
            let schema = schemas.get(i).map(|s| s.as_ref()).unwrap_or(&empty);
            builder
                .append(CATALOG, &r.domain, &r.table, "TABLE", schema)
                .map_err(internal)?;
        }
        let schema = builder.schema();
        Ok(once(schema, builder.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        let schema = query.into_builder().schema();
        self.described(request, schema, command).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        let schema = builder.schema();
        Ok(once(schema, builder.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        let schema = query.into_builder(&sql_info()?).schema();
        self.described(request, schema, command).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let data = sql_info()?;
        let builder = query.into_builder(&data);
        let schema = builder.schema();
        Ok(once(schema, builder.build()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
