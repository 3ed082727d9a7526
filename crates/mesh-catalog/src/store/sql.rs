//! SQLite and PostgreSQL stores. The SQL is portable (`$N` parameters, text timestamps, JSON as
//! text), so one macro body implements [`Tx`] for both; only connecting, migrating and starting
//! a write transaction differ.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::{
    Backend, CatalogStore, DeliveryRow, DependencyRow, DomainRow, EventRow, GrantRow, LocationRow,
    MaskingKeyRow, NewEvent, ObservationRow, ObservationStats, PolicyBundleRow, PortRow,
    ProductQuery, ProductRow, RequestRow, RoleBinding, RunRow, ScheduledRow, SlotRow, SnapshotRow,
    StoreError, StoreResult, SubscriptionRow, TeamRow, TokenRow, Tx, UsageRow, VersionRow,
    ViolationRow,
};

/// Maps a unique-key violation to [`StoreError::Conflict`].
fn conflict(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_owned()),
        _ => StoreError::Database(e),
    }
}

fn json(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))
}

// Column lists as macros, so every statement stays a `&'static str` (sqlx refuses dynamic SQL).
macro_rules! product_cols {
    () => {
        "id, domain, team, name, latest, status, revision, created_at, updated_at"
    };
}
macro_rules! version_cols {
    () => {
        "product, version, major, status, digest, descriptor, published_by, published_at, \
         sunset, migration_guide, deprecated_at, revision, transform, schedule"
    };
}
macro_rules! port_cols {
    () => {
        "product, version, port, major, contract_id, compatibility, digest, contract"
    };
}

macro_rules! bundle_cols {
    () => {
        "scope, version, files, overrides, digest, published_by, published_at"
    };
}

macro_rules! run_cols {
    () => {
        "id, product, version, port, major, location, state, started_at, heartbeat_at, \
         finished_at, owner, delta_version, rows_in, rows_out, bytes_out, inputs, checks, error, \
         actor, note"
    };
}
macro_rules! snapshot_cols {
    () => {
        "product, port, major, version, run, location, delta_version, updated_at"
    };
}

macro_rules! request_cols {
    () => {
        "id, product, port, major, requester, consumer, purpose, columns, days, state, approvals, \
         needed, policy, created_at, decided_at, reason, revision"
    };
}
macro_rules! grant_cols {
    () => {
        "id, request, product, port, major, grantee, columns, granted_by, granted_at, expires_at, \
         revoked_at, revoked_by, reason"
    };
}

macro_rules! row_readers {
    ($row:ty) => {
        fn product_row(r: &$row) -> Result<ProductRow, sqlx::Error> {
            Ok(ProductRow {
                id: r.try_get("id")?,
                domain: r.try_get("domain")?,
                team: r.try_get("team")?,
                name: r.try_get("name")?,
                latest: r.try_get("latest")?,
                status: r.try_get("status")?,
                revision: r.try_get("revision")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn version_row(r: &$row) -> Result<VersionRow, sqlx::Error> {
            Ok(VersionRow {
                product: r.try_get("product")?,
                version: r.try_get("version")?,
                major: r.try_get("major")?,
                status: r.try_get("status")?,
                digest: r.try_get("digest")?,
                descriptor: r.try_get("descriptor")?,
                published_by: r.try_get("published_by")?,
                published_at: r.try_get("published_at")?,
                sunset: r.try_get("sunset")?,
                migration_guide: r.try_get("migration_guide")?,
                deprecated_at: r.try_get("deprecated_at")?,
                revision: r.try_get("revision")?,
                transform: r.try_get("transform")?,
                schedule: r.try_get("schedule")?,
            })
        }

        fn subscription_row(r: &$row) -> Result<SubscriptionRow, sqlx::Error> {
            Ok(SubscriptionRow {
                id: r.try_get("id")?,
                scope: r.try_get("scope")?,
                subject: r.try_get("subject")?,
                channel: r.try_get("channel")?,
                target: r.try_get("target")?,
                events: r.try_get("events")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn port_row(r: &$row) -> Result<PortRow, sqlx::Error> {
            Ok(PortRow {
                product: r.try_get("product")?,
                version: r.try_get("version")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                contract_id: r.try_get("contract_id")?,
                compatibility: r.try_get("compatibility")?,
                digest: r.try_get("digest")?,
                contract: r.try_get("contract")?,
            })
        }

        fn event_row(r: &$row) -> StoreResult<EventRow> {
            let payload: String = r.try_get("payload")?;
            Ok(EventRow {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                actor: r.try_get("actor")?,
                payload: json(&payload)?,
            })
        }

        fn domain_row(r: &$row) -> Result<DomainRow, sqlx::Error> {
            Ok(DomainRow {
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn binding_row(r: &$row) -> Result<RoleBinding, sqlx::Error> {
            Ok(RoleBinding {
                principal: r.try_get("principal")?,
                role: r.try_get("role")?,
                domain: r.try_get("domain")?,
            })
        }

        fn team_row(r: &$row) -> Result<TeamRow, sqlx::Error> {
            Ok(TeamRow {
                name: r.try_get("name")?,
                domain: r.try_get("domain")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn bundle_row(r: &$row) -> Result<PolicyBundleRow, sqlx::Error> {
            Ok(PolicyBundleRow {
                scope: r.try_get("scope")?,
                version: r.try_get("version")?,
                files: r.try_get("files")?,
                overrides: r.try_get("overrides")?,
                digest: r.try_get("digest")?,
                published_by: r.try_get("published_by")?,
                published_at: r.try_get("published_at")?,
            })
        }

        fn run_row(r: &$row) -> Result<RunRow, sqlx::Error> {
            Ok(RunRow {
                id: r.try_get("id")?,
                product: r.try_get("product")?,
                version: r.try_get("version")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                location: r.try_get("location")?,
                state: r.try_get("state")?,
                started_at: r.try_get("started_at")?,
                heartbeat_at: r.try_get("heartbeat_at")?,
                finished_at: r.try_get("finished_at")?,
                owner: r.try_get("owner")?,
                delta_version: r.try_get("delta_version")?,
                rows_in: r.try_get("rows_in")?,
                rows_out: r.try_get("rows_out")?,
                bytes_out: r.try_get("bytes_out")?,
                inputs: r.try_get("inputs")?,
                checks: r.try_get("checks")?,
                error: r.try_get("error")?,
                actor: r.try_get("actor")?,
                note: r.try_get("note")?,
            })
        }

        fn violation_row(r: &$row) -> Result<ViolationRow, sqlx::Error> {
            Ok(ViolationRow {
                id: r.try_get("id")?,
                product: r.try_get("product")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                property: r.try_get("property")?,
                objective: r.try_get("objective")?,
                observed: r.try_get("observed")?,
                started_at: r.try_get("started_at")?,
                detected_at: r.try_get("detected_at")?,
                ended_at: r.try_get("ended_at")?,
            })
        }

        fn snapshot_row(r: &$row) -> Result<SnapshotRow, sqlx::Error> {
            Ok(SnapshotRow {
                product: r.try_get("product")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                version: r.try_get("version")?,
                run: r.try_get("run")?,
                location: r.try_get("location")?,
                delta_version: r.try_get("delta_version")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn request_row(r: &$row) -> Result<RequestRow, sqlx::Error> {
            Ok(RequestRow {
                id: r.try_get("id")?,
                product: r.try_get("product")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                requester: r.try_get("requester")?,
                consumer: r.try_get("consumer")?,
                purpose: r.try_get("purpose")?,
                columns: r.try_get("columns")?,
                days: r.try_get("days")?,
                state: r.try_get("state")?,
                approvals: r.try_get("approvals")?,
                needed: r.try_get("needed")?,
                policy: r.try_get("policy")?,
                created_at: r.try_get("created_at")?,
                decided_at: r.try_get("decided_at")?,
                reason: r.try_get("reason")?,
                revision: r.try_get("revision")?,
            })
        }

        fn grant_row(r: &$row) -> Result<GrantRow, sqlx::Error> {
            Ok(GrantRow {
                id: r.try_get("id")?,
                request: r.try_get("request")?,
                product: r.try_get("product")?,
                port: r.try_get("port")?,
                major: r.try_get("major")?,
                grantee: r.try_get("grantee")?,
                columns: r.try_get("columns")?,
                granted_by: r.try_get("granted_by")?,
                granted_at: r.try_get("granted_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                revoked_by: r.try_get("revoked_by")?,
                reason: r.try_get("reason")?,
            })
        }

        fn token_row(r: &$row) -> Result<TokenRow, sqlx::Error> {
            Ok(TokenRow {
                id: r.try_get("id")?,
                hash: r.try_get("hash")?,
                principal: r.try_get("principal")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                scope: r.try_get("scope")?,
                grant: r.try_get("grant_id")?,
                label: r.try_get("label")?,
            })
        }
    };
}

/// Implements [`Tx`] for a transaction wrapper with field `tx: sqlx::Transaction<'static, DB>`.
/// `$event_lock` is run before appending an event (empty: nothing), so that events become
/// visible in sequence order.
macro_rules! sql_tx {
    ($tx:ident, $event_lock:expr) => {
        #[async_trait]
        impl Tx for $tx {
            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.tx.commit().await?;
                Ok(())
            }

            async fn domain(&mut self, name: &str) -> StoreResult<Option<DomainRow>> {
                let row = sqlx::query("SELECT name, description, created_at FROM domains WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.as_ref().map(domain_row).transpose()?)
            }

            async fn domains(&mut self) -> StoreResult<Vec<DomainRow>> {
                let rows = sqlx::query("SELECT name, description, created_at FROM domains ORDER BY name")
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(domain_row).collect::<Result<_, _>>()?)
            }

            async fn insert_domain(&mut self, row: &DomainRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO domains (name, description, created_at) VALUES ($1, $2, $3)")
                    .bind(&row.name)
                    .bind(&row.description)
                    .bind(&row.created_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(conflict("domain exists"))?;
                Ok(())
            }

            async fn set_domain_description(
                &mut self,
                name: &str,
                description: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query("UPDATE domains SET description = $2 WHERE name = $1")
                    .bind(name)
                    .bind(description)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn team(&mut self, name: &str) -> StoreResult<Option<TeamRow>> {
                let row = sqlx::query("SELECT name, domain, created_at FROM teams WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.as_ref().map(team_row).transpose()?)
            }

            async fn teams(&mut self) -> StoreResult<Vec<TeamRow>> {
                let rows = sqlx::query("SELECT name, domain, created_at FROM teams ORDER BY name")
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(team_row).collect::<Result<_, _>>()?)
            }

            async fn insert_team(&mut self, row: &TeamRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO teams (name, domain, created_at) VALUES ($1, $2, $3)")
                    .bind(&row.name)
                    .bind(&row.domain)
                    .bind(&row.created_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(conflict("team exists"))?;
                Ok(())
            }

            async fn product(&mut self, id: &str) -> StoreResult<Option<ProductRow>> {
                let sql = concat!("SELECT ", product_cols!(), " FROM products WHERE id = $1");
                let row = sqlx::query(sql).bind(id).fetch_optional(&mut *self.tx).await?;
                Ok(row.as_ref().map(product_row).transpose()?)
            }

            async fn products(&mut self, query: &ProductQuery) -> StoreResult<Vec<ProductRow>> {
                let rows = sqlx::query(PRODUCTS_PAGE)
                    .bind(&query.domain)
                    .bind(query.after.as_deref().unwrap_or_default())
                    .bind(query.limit)
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(product_row).collect::<Result<_, _>>()?)
            }

            async fn insert_product(&mut self, row: &ProductRow) -> StoreResult<()> {
                let sql = concat!("INSERT INTO products (", product_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
                sqlx::query(sql)
                    .bind(&row.id)
                    .bind(&row.domain)
                    .bind(&row.team)
                    .bind(&row.name)
                    .bind(&row.latest)
                    .bind(&row.status)
                    .bind(row.revision)
                    .bind(&row.created_at)
                    .bind(&row.updated_at)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(conflict("product exists"))?;
                Ok(())
            }

            async fn update_product(&mut self, row: &ProductRow, expected: i64) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE products SET domain = $2, team = $3, name = $4, latest = $5, status = $6, \
                     revision = $7, updated_at = $8 WHERE id = $1 AND revision = $9",
                )
                .bind(&row.id)
                .bind(&row.domain)
                .bind(&row.team)
                .bind(&row.name)
                .bind(&row.latest)
                .bind(&row.status)
                .bind(row.revision)
                .bind(&row.updated_at)
                .bind(expected)
                .execute(&mut *self.tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "product {} changed since revision {expected}",
                        row.id
                    )));
                }
                Ok(())
            }

            async fn version(&mut self, product: &str, version: &str) -> StoreResult<Option<VersionRow>> {
                let sql = concat!("SELECT ", version_cols!(), " FROM product_versions WHERE product = $1 AND version = $2");
                let row = sqlx::query(sql)
                    .bind(product)
                    .bind(version)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.as_ref().map(version_row).transpose()?)
            }

            async fn versions(&mut self, product: &str) -> StoreResult<Vec<VersionRow>> {
                let sql = concat!("SELECT ", version_cols!(), " FROM product_versions WHERE product = $1");
                let rows = sqlx::query(sql).bind(product).fetch_all(&mut *self.tx).await?;
                Ok(rows.iter().map(version_row).collect::<Result<_, _>>()?)
            }

            async fn insert_version(&mut self, row: &VersionRow) -> StoreResult<()> {
                let sql = concat!("INSERT INTO product_versions (", version_cols!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
                sqlx::query(sql)
                    .bind(&row.product)
                    .bind(&row.version)
                    .bind(row.major)
                    .bind(&row.status)
                    .bind(&row.digest)
                    .bind(&row.descriptor)
                    .bind(&row.published_by)
                    .bind(&row.published_at)
                    .bind(&row.sunset)
                    .bind(&row.migration_guide)
                    .bind(&row.deprecated_at)
                    .bind(row.revision)
                    .bind(&row.transform)
                    .bind(&row.schedule)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(conflict("version exists"))?;
                Ok(())
            }

            async fn update_version(&mut self, row: &VersionRow, expected: i64) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE product_versions SET status = $3, sunset = $4, migration_guide = $5, \
                     deprecated_at = $6, revision = $7 \
                     WHERE product = $1 AND version = $2 AND revision = $8",
                )
                .bind(&row.product)
                .bind(&row.version)
                .bind(&row.status)
                .bind(&row.sunset)
                .bind(&row.migration_guide)
                .bind(&row.deprecated_at)
                .bind(row.revision)
                .bind(expected)
                .execute(&mut *self.tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "{}@{} changed since revision {expected}",
                        row.product, row.version
                    )));
                }
                Ok(())
            }

            async fn ports(&mut self, product: &str, version: &str) -> StoreResult<Vec<PortRow>> {
                let sql = concat!("SELECT ", port_cols!(), " FROM port_contracts WHERE product = $1 AND version = $2 ORDER BY port");
                let rows = sqlx::query(sql)
                    .bind(product)
                    .bind(version)
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(port_row).collect::<Result<_, _>>()?)
            }

            async fn port_history(&mut self, product: &str, port: &str) -> StoreResult<Vec<PortRow>> {
                let sql = concat!("SELECT ", port_cols!(), " FROM port_contracts WHERE product = $1 AND port = $2");
                let rows = sqlx::query(sql)
                    .bind(product)
                    .bind(port)
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(port_row).collect::<Result<_, _>>()?)
            }

            async fn insert_port(&mut self, row: &PortRow) -> StoreResult<()> {
                let sql = concat!("INSERT INTO port_contracts (", port_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
                sqlx::query(sql)
                    .bind(&row.product)
                    .bind(&row.version)
                    .bind(&row.port)
                    .bind(row.major)
                    .bind(&row.contract_id)
                    .bind(&row.compatibility)
                    .bind(&row.digest)
                    .bind(&row.contract)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(conflict("port contract exists"))?;
                Ok(())
            }

            async fn insert_dependency(&mut self, row: &DependencyRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO dependencies (product, version, input_port, contract_id) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&row.product)
                .bind(&row.version)
                .bind(&row.input_port)
                .bind(&row.contract_id)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("input port exists"))?;
                Ok(())
            }

            async fn dependents(&mut self, contract_ids: &[String]) -> StoreResult<Vec<DependencyRow>> {
                let mut out = Vec::new();
                for id in contract_ids {
                    let rows = sqlx::query(
                        "SELECT product, version, input_port, contract_id FROM dependencies \
                         WHERE contract_id = $1",
                    )
                    .bind(id)
                    .fetch_all(&mut *self.tx)
                    .await?;
                    for r in &rows {
                        out.push(DependencyRow {
                            product: r.try_get("product")?,
                            version: r.try_get("version")?,
                            input_port: r.try_get("input_port")?,
                            contract_id: r.try_get("contract_id")?,
                        });
                    }
                }
                out.sort();
                out.dedup();
                Ok(out)
            }

            async fn append_event(&mut self, event: &NewEvent) -> StoreResult<i64> {
                let lock: &'static str = $event_lock;
                if !lock.is_empty() {
                    sqlx::query(lock).execute(&mut *self.tx).await?;
                }
                let row = sqlx::query(
                    "INSERT INTO events (at, kind, subject, actor, payload) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                )
                .bind(&event.at)
                .bind(&event.kind)
                .bind(&event.subject)
                .bind(&event.actor)
                .bind(event.payload.to_string())
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(row.try_get("seq")?)
            }

            async fn events(
                &mut self,
                after: i64,
                limit: i64,
                subject: Option<&str>,
            ) -> StoreResult<Vec<EventRow>> {
                let rows = sqlx::query(
                    "SELECT seq, at, kind, subject, actor, payload FROM events \
                     WHERE seq > $1 AND ($2 IS NULL OR subject = $2) ORDER BY seq LIMIT $3",
                )
                .bind(after)
                .bind(subject)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter().map(event_row).collect()
            }

            async fn max_event_seq(&mut self) -> StoreResult<i64> {
                let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(row.try_get("seq")?)
            }

            async fn latest_versions(
                &mut self,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<(ProductRow, VersionRow)>> {
                let rows = sqlx::query(LATEST_VERSIONS_PAGE)
                    .bind(after.unwrap_or_default())
                    .bind(limit)
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let product = ProductRow {
                            id: r.try_get("id")?,
                            domain: r.try_get("domain")?,
                            team: r.try_get("team")?,
                            name: r.try_get("name")?,
                            latest: r.try_get("latest")?,
                            status: r.try_get("product_status")?,
                            revision: r.try_get("product_revision")?,
                            created_at: r.try_get("created_at")?,
                            updated_at: r.try_get("updated_at")?,
                        };
                        Ok((product, version_row(r)?))
                    })
                    .collect()
            }

            async fn latest_ports(&mut self, after: Option<&str>, upto: &str) -> StoreResult<Vec<PortRow>> {
                let rows = sqlx::query(LATEST_PORTS_PAGE)
                    .bind(after.unwrap_or_default())
                    .bind(upto)
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.iter().map(port_row).collect::<Result<_, _>>()?)
            }

            async fn replace_lineage(&mut self, origin: &str, edges: &[(String, String)]) -> StoreResult<()> {
                sqlx::query("DELETE FROM lineage_edges WHERE origin = $1")
                    .bind(origin)
                    .execute(&mut *self.tx)
                    .await?;
                self.add_lineage(origin, edges).await
            }

            async fn add_lineage(&mut self, origin: &str, edges: &[(String, String)]) -> StoreResult<()> {
                for (source, target) in edges {
                    sqlx::query(
                        "INSERT INTO lineage_edges (origin, source, target) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(origin)
                    .bind(source)
                    .bind(target)
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(())
            }

            async fn lineage_of(&mut self, origin: &str) -> StoreResult<Vec<(String, String)>> {
                let rows = sqlx::query(
                    "SELECT source, target FROM lineage_edges WHERE origin = $1 ORDER BY source, target",
                )
                .bind(origin)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("source")?, r.try_get("target")?)))
                    .collect()
            }

            async fn lineage_page(
                &mut self,
                after: Option<&(String, String, String)>,
                limit: i64,
            ) -> StoreResult<Vec<(String, String, String)>> {
                let (o, s, t) = match after {
                    Some((o, s, t)) => (o.as_str(), s.as_str(), t.as_str()),
                    None => ("", "", ""),
                };
                let rows = sqlx::query(LINEAGE_PAGE)
                .bind(o)
                .bind(s)
                .bind(t)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("origin")?, r.try_get("source")?, r.try_get("target")?)))
                    .collect()
            }

            async fn put_lineage_node(&mut self, id: &str, data: &serde_json::Value, at: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO lineage_nodes (id, data, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(data.to_string())
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn lineage_node(&mut self, id: &str) -> StoreResult<Option<serde_json::Value>> {
                let row = sqlx::query("SELECT data FROM lineage_nodes WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                match row {
                    Some(r) => {
                        let text: String = r.try_get("data")?;
                        Ok(Some(json(&text)?))
                    }
                    None => Ok(None),
                }
            }

            async fn token_by_hash(&mut self, hash: &str) -> StoreResult<Option<TokenRow>> {
                let row = sqlx::query(
                    "SELECT id, hash, principal, created_at, expires_at, revoked_at, scope, grant_id, label \
                     FROM tokens WHERE hash = $1",
                )
                .bind(hash)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.as_ref().map(token_row).transpose()?)
            }

            async fn insert_token(&mut self, row: &TokenRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO tokens (id, hash, principal, created_at, expires_at, revoked_at, scope, grant_id, label) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&row.id)
                .bind(&row.hash)
                .bind(&row.principal)
                .bind(&row.created_at)
                .bind(&row.expires_at)
                .bind(&row.revoked_at)
                .bind(&row.scope)
                .bind(&row.grant)
                .bind(&row.label)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("token exists"))?;
                Ok(())
            }

            async fn revoke_token(&mut self, id: &str, at: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn credentials(
                &mut self,
                grant: Option<&str>,
                principal: Option<&str>,
            ) -> StoreResult<Vec<TokenRow>> {
                let rows = sqlx::query(
                    "SELECT id, hash, principal, created_at, expires_at, revoked_at, scope, grant_id, label \
                     FROM tokens WHERE grant_id IS NOT NULL AND ($1 IS NULL OR grant_id = $1) \
                     AND ($2 IS NULL OR principal = $2) ORDER BY created_at DESC, id",
                )
                .bind(grant)
                .bind(principal)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(token_row).collect::<Result<_, _>>()?)
            }

            async fn credential(&mut self, id: &str) -> StoreResult<Option<TokenRow>> {
                let row = sqlx::query(
                    "SELECT id, hash, principal, created_at, expires_at, revoked_at, scope, grant_id, label \
                     FROM tokens WHERE id = $1 AND grant_id IS NOT NULL",
                )
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.as_ref().map(token_row).transpose()?)
            }

            async fn revoke_credentials_of(&mut self, grant: &str, at: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
                )
                .bind(grant)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn revoke_tokens_of(&mut self, principal: &str, at: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $2 WHERE principal = $1 AND revoked_at IS NULL",
                )
                .bind(principal)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn locations(&mut self, domain: Option<&str>) -> StoreResult<Vec<LocationRow>> {
                let rows = sqlx::query(
                    "SELECT name, url, domain, created_at, created_by FROM locations \
                     WHERE ($1 IS NULL OR domain = $1) ORDER BY name",
                )
                .bind(domain)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LocationRow {
                            name: r.try_get("name")?,
                            url: r.try_get("url")?,
                            domain: r.try_get("domain")?,
                            created_at: r.try_get("created_at")?,
                            created_by: r.try_get("created_by")?,
                        })
                    })
                    .collect()
            }

            async fn insert_location(&mut self, row: &LocationRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO locations (name, url, domain, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&row.name)
                .bind(&row.url)
                .bind(&row.domain)
                .bind(&row.created_at)
                .bind(&row.created_by)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("location exists"))?;
                Ok(())
            }

            async fn delete_location(&mut self, name: &str) -> StoreResult<Option<LocationRow>> {
                let found = self
                    .locations(None)
                    .await?
                    .into_iter()
                    .find(|l| l.name == name);
                if found.is_some() {
                    sqlx::query("DELETE FROM locations WHERE name = $1")
                        .bind(name)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(found)
            }

            async fn masking_key(&mut self) -> StoreResult<Option<MaskingKeyRow>> {
                let row = sqlx::query(
                    "SELECT key, created_at, created_by FROM masking_key WHERE slot = 1",
                )
                .fetch_optional(&mut *self.tx)
                .await?;
                row.map(|r| {
                    Ok(MaskingKeyRow {
                        key: r.try_get("key")?,
                        created_at: r.try_get("created_at")?,
                        created_by: r.try_get("created_by")?,
                    })
                })
                .transpose()
            }

            async fn put_masking_key(
                &mut self,
                row: &MaskingKeyRow,
                replace: bool,
            ) -> StoreResult<bool> {
                let sql = if replace {
                    "INSERT INTO masking_key (slot, key, created_at, created_by) VALUES (1, $1, $2, $3) \
                     ON CONFLICT (slot) DO UPDATE SET key = excluded.key, \
                     created_at = excluded.created_at, created_by = excluded.created_by"
                } else {
                    "INSERT INTO masking_key (slot, key, created_at, created_by) VALUES (1, $1, $2, $3) \
                     ON CONFLICT (slot) DO NOTHING"
                };
                let done = sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.created_at)
                    .bind(&row.created_by)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_bindings(&mut self, principal: &str) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM role_bindings WHERE principal = $1")
                    .bind(principal)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn principal_revoked_at(&mut self, principal: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query(
                    "SELECT revoked_at FROM principal_revocations WHERE principal = $1",
                )
                .bind(principal)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.map(|r| r.try_get("revoked_at")).transpose()?)
            }

            async fn put_principal_revocation(&mut self, principal: &str, at: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO principal_revocations (principal, revoked_at) VALUES ($1, $2) \
                     ON CONFLICT (principal) DO UPDATE SET revoked_at = excluded.revoked_at",
                )
                .bind(principal)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn bindings(&mut self, principal: &str) -> StoreResult<Vec<RoleBinding>> {
                let rows = sqlx::query(
                    "SELECT principal, role, domain FROM role_bindings WHERE principal = $1 \
                     ORDER BY role, domain",
                )
                .bind(principal)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(binding_row).collect::<Result<_, _>>()?)
            }

            async fn all_bindings(&mut self) -> StoreResult<Vec<RoleBinding>> {
                let rows = sqlx::query(
                    "SELECT principal, role, domain FROM role_bindings ORDER BY principal, role, domain",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(binding_row).collect::<Result<_, _>>()?)
            }

            async fn delete_binding(&mut self, row: &RoleBinding) -> StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM role_bindings WHERE principal = $1 AND role = $2 AND domain = $3",
                )
                .bind(&row.principal)
                .bind(&row.role)
                .bind(&row.domain)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn insert_binding(&mut self, row: &RoleBinding) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO role_bindings (principal, role, domain) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&row.principal)
                .bind(&row.role)
                .bind(&row.domain)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn policy_bundle(
                &mut self,
                scope: &str,
                version: Option<i64>,
            ) -> StoreResult<Option<PolicyBundleRow>> {
                let row = match version {
                    Some(v) => sqlx::query(concat!(
                        "SELECT ", bundle_cols!(), " FROM policy_bundles WHERE scope = $1 AND version = $2"
                    ))
                    .bind(scope)
                    .bind(v)
                    .fetch_optional(&mut *self.tx)
                    .await?,
                    None => sqlx::query(concat!(
                        "SELECT ", bundle_cols!(),
                        " FROM policy_bundles WHERE scope = $1 ORDER BY version DESC LIMIT 1"
                    ))
                    .bind(scope)
                    .fetch_optional(&mut *self.tx)
                    .await?,
                };
                Ok(row.as_ref().map(bundle_row).transpose()?)
            }

            async fn policy_bundles(&mut self, scope: &str) -> StoreResult<Vec<PolicyBundleRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", bundle_cols!(), " FROM policy_bundles WHERE scope = $1 ORDER BY version"
                ))
                .bind(scope)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(bundle_row).collect::<Result<_, _>>()?)
            }

            async fn current_policy_bundles(&mut self) -> StoreResult<Vec<PolicyBundleRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", bundle_cols!(), " FROM policy_bundles b WHERE version = \
                     (SELECT MAX(version) FROM policy_bundles c WHERE c.scope = b.scope) ORDER BY scope"
                ))
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(bundle_row).collect::<Result<_, _>>()?)
            }

            async fn insert_policy_bundle(&mut self, row: &PolicyBundleRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO policy_bundles (", bundle_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(&row.scope)
                .bind(row.version)
                .bind(&row.files)
                .bind(&row.overrides)
                .bind(&row.digest)
                .bind(&row.published_by)
                .bind(&row.published_at)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("policy bundle version exists"))?;
                Ok(())
            }

            async fn insert_run(&mut self, row: &RunRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO runs (", run_cols!(), ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                ))
                .bind(&row.id)
                .bind(&row.product)
                .bind(&row.version)
                .bind(&row.port)
                .bind(row.major)
                .bind(&row.location)
                .bind(&row.state)
                .bind(&row.started_at)
                .bind(&row.heartbeat_at)
                .bind(&row.finished_at)
                .bind(&row.owner)
                .bind(row.delta_version)
                .bind(row.rows_in)
                .bind(row.rows_out)
                .bind(row.bytes_out)
                .bind(&row.inputs)
                .bind(&row.checks)
                .bind(&row.error)
                .bind(&row.actor)
                .bind(&row.note)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("run exists"))?;
                Ok(())
            }

            async fn run(&mut self, id: &str) -> StoreResult<Option<RunRow>> {
                let row = sqlx::query(concat!("SELECT ", run_cols!(), " FROM runs WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.as_ref().map(run_row).transpose()?)
            }

            async fn runs(
                &mut self,
                product: &str,
                port: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<RunRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", run_cols!(), " FROM runs WHERE product = $1 \
                     AND ($2 IS NULL OR port = $2) ORDER BY started_at DESC, id DESC LIMIT $3"
                ))
                .bind(product)
                .bind(port)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
            }

            async fn open_runs(&mut self, product: &str, port: &str) -> StoreResult<Vec<RunRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", run_cols!(), " FROM runs WHERE product = $1 AND port = $2 \
                     AND state IN ('running', 'committing') ORDER BY started_at"
                ))
                .bind(product)
                .bind(port)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
            }

            async fn update_run(&mut self, row: &RunRow, expected: &str) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE runs SET state = $2, heartbeat_at = $3, finished_at = $4, \
                     delta_version = $5, rows_out = $6, bytes_out = $7, checks = $8, error = $9, \
                     rows_in = $11, note = $12 WHERE id = $1 AND state = $10",
                )
                .bind(&row.id)
                .bind(&row.state)
                .bind(&row.heartbeat_at)
                .bind(&row.finished_at)
                .bind(row.delta_version)
                .bind(row.rows_out)
                .bind(row.bytes_out)
                .bind(&row.checks)
                .bind(&row.error)
                .bind(expected)
                .bind(row.rows_in)
                .bind(&row.note)
                .execute(&mut *self.tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "run {} is no longer {expected}",
                        row.id
                    )));
                }
                Ok(())
            }

            async fn snapshot(
                &mut self,
                product: &str,
                port: &str,
                major: i64,
            ) -> StoreResult<Option<SnapshotRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ", snapshot_cols!(),
                    " FROM snapshots WHERE product = $1 AND port = $2 AND major = $3"
                ))
                .bind(product)
                .bind(port)
                .bind(major)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.as_ref().map(snapshot_row).transpose()?)
            }

            async fn snapshots(&mut self, product: &str) -> StoreResult<Vec<SnapshotRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", snapshot_cols!(), " FROM snapshots WHERE product = $1 ORDER BY port, major"
                ))
                .bind(product)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(snapshot_row).collect::<Result<_, _>>()?)
            }

            async fn put_snapshot(&mut self, row: &SnapshotRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO snapshots (", snapshot_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (product, port, major) DO UPDATE SET version = excluded.version, \
                     run = excluded.run, location = excluded.location, \
                     delta_version = excluded.delta_version, updated_at = excluded.updated_at"
                ))
                .bind(&row.product)
                .bind(&row.port)
                .bind(row.major)
                .bind(&row.version)
                .bind(&row.run)
                .bind(&row.location)
                .bind(row.delta_version)
                .bind(&row.updated_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO access_requests (", request_cols!(), ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                ))
                .bind(&row.id)
                .bind(&row.product)
                .bind(&row.port)
                .bind(row.major)
                .bind(&row.requester)
                .bind(&row.consumer)
                .bind(&row.purpose)
                .bind(&row.columns)
                .bind(row.days)
                .bind(&row.state)
                .bind(&row.approvals)
                .bind(row.needed)
                .bind(&row.policy)
                .bind(&row.created_at)
                .bind(&row.decided_at)
                .bind(&row.reason)
                .bind(row.revision)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("request exists"))?;
                Ok(())
            }

            async fn request(&mut self, id: &str) -> StoreResult<Option<RequestRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ", request_cols!(), " FROM access_requests WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.as_ref().map(request_row).transpose()?)
            }

            async fn requests(
                &mut self,
                product: Option<&str>,
                requester: Option<&str>,
                state: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<RequestRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", request_cols!(), " FROM access_requests \
                     WHERE ($1 IS NULL OR product = $1) AND ($2 IS NULL OR requester = $2) \
                     AND ($3 IS NULL OR state = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(product)
                .bind(requester)
                .bind(state)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(request_row).collect::<Result<_, _>>()?)
            }

            async fn update_request(&mut self, row: &RequestRow, expected: i64) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE access_requests SET state = $2, approvals = $3, decided_at = $4, \
                     reason = $5, revision = $6 WHERE id = $1 AND revision = $7",
                )
                .bind(&row.id)
                .bind(&row.state)
                .bind(&row.approvals)
                .bind(&row.decided_at)
                .bind(&row.reason)
                .bind(row.revision)
                .bind(expected)
                .execute(&mut *self.tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("request {} changed", row.id)));
                }
                Ok(())
            }

            async fn insert_grant(&mut self, row: &GrantRow) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO grants (", grant_cols!(), ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(&row.id)
                .bind(&row.request)
                .bind(&row.product)
                .bind(&row.port)
                .bind(row.major)
                .bind(&row.grantee)
                .bind(&row.columns)
                .bind(&row.granted_by)
                .bind(&row.granted_at)
                .bind(&row.expires_at)
                .bind(&row.revoked_at)
                .bind(&row.revoked_by)
                .bind(&row.reason)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("grant exists"))?;
                Ok(())
            }

            async fn grant(&mut self, id: &str) -> StoreResult<Option<GrantRow>> {
                let row = sqlx::query(concat!("SELECT ", grant_cols!(), " FROM grants WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.as_ref().map(grant_row).transpose()?)
            }

            async fn grants(
                &mut self,
                product: Option<&str>,
                grantee: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<GrantRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", grant_cols!(), " FROM grants \
                     WHERE ($1 IS NULL OR product = $1) AND ($2 IS NULL OR grantee = $2) \
                     ORDER BY granted_at DESC, id DESC LIMIT $3"
                ))
                .bind(product)
                .bind(grantee)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(grant_row).collect::<Result<_, _>>()?)
            }

            async fn revoke_grant(
                &mut self,
                id: &str,
                at: &str,
                by: &str,
                reason: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE grants SET revoked_at = $2, revoked_by = $3, reason = $4 \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .bind(by)
                .bind(reason)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_usage(&mut self, read: &UsageRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO port_usage \
                     (reader, product, port, major, reads, rows_read, first_at, last_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (reader, product, port, major) DO UPDATE SET \
                     reads = port_usage.reads + excluded.reads, \
                     rows_read = port_usage.rows_read + excluded.rows_read, \
                     last_at = excluded.last_at",
                )
                .bind(&read.reader)
                .bind(&read.product)
                .bind(&read.port)
                .bind(read.major)
                .bind(read.reads)
                .bind(read.rows_read)
                .bind(&read.first_at)
                .bind(&read.last_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn rate_bucket(&mut self, key: &str, new: (f64, i64)) -> StoreResult<(f64, i64)> {
                // Created if missing (a concurrent creator waits on the key, then does nothing),
                // then locked by the UPDATE (PostgreSQL; SQLite's write transaction is already
                // exclusive) before it is read.
                sqlx::query(
                    "INSERT INTO rate_buckets (key, tokens, at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(new.0)
                .bind(new.1)
                .execute(&mut *self.tx)
                .await?;
                sqlx::query("UPDATE rate_buckets SET at_ms = at_ms WHERE key = $1")
                    .bind(key)
                    .execute(&mut *self.tx)
                    .await?;
                let r = sqlx::query("SELECT tokens, at_ms FROM rate_buckets WHERE key = $1")
                    .bind(key)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok((r.try_get("tokens")?, r.try_get("at_ms")?))
            }

            async fn claim_slot(&mut self, row: &SlotRow) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO schedule_slots (product, slot_at, claimed_by, claimed_at, state, \
                     attempts, run_id, finished_at, cause) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (product, slot_at) DO NOTHING",
                )
                .bind(&row.product)
                .bind(&row.slot_at)
                .bind(&row.claimed_by)
                .bind(&row.claimed_at)
                .bind(&row.state)
                .bind(row.attempts)
                .bind(&row.run_id)
                .bind(&row.finished_at)
                .bind(&row.cause)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn finish_slot(&mut self, row: &SlotRow) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE schedule_slots SET state = $4, attempts = $5, run_id = $6, \
                     finished_at = $7, fingerprint = $8, error = $9 \
                     WHERE product = $1 AND slot_at = $2 AND claimed_by = $3",
                )
                .bind(&row.product)
                .bind(&row.slot_at)
                .bind(&row.claimed_by)
                .bind(&row.state)
                .bind(row.attempts)
                .bind(&row.run_id)
                .bind(&row.finished_at)
                .bind(&row.fingerprint)
                .bind(&row.error)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn slots(&mut self, product: &str, limit: i64) -> StoreResult<Vec<SlotRow>> {
                let rows = sqlx::query(
                    "SELECT product, slot_at, claimed_by, claimed_at, state, attempts, run_id, \
                     finished_at, cause, fingerprint, error FROM schedule_slots WHERE product = $1 \
                     ORDER BY slot_at DESC LIMIT $2",
                )
                .bind(product)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(SlotRow {
                            product: r.try_get("product")?,
                            slot_at: r.try_get("slot_at")?,
                            claimed_by: r.try_get("claimed_by")?,
                            claimed_at: r.try_get("claimed_at")?,
                            state: r.try_get("state")?,
                            attempts: r.try_get("attempts")?,
                            run_id: r.try_get("run_id")?,
                            finished_at: r.try_get("finished_at")?,
                            cause: r.try_get("cause")?,
                            fingerprint: r.try_get("fingerprint")?,
                            error: r.try_get("error")?,
                        })
                    })
                    .collect()
            }

            async fn insert_subscription(&mut self, row: &SubscriptionRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO subscriptions (id, scope, subject, channel, target, events, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.id)
                .bind(&row.scope)
                .bind(&row.subject)
                .bind(&row.channel)
                .bind(&row.target)
                .bind(&row.events)
                .bind(&row.created_by)
                .bind(&row.created_at)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("subscription exists"))?;
                Ok(())
            }

            async fn delete_subscription(&mut self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn subscription(&mut self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
                let row = sqlx::query(
                    "SELECT id, scope, subject, channel, target, events, created_by, created_at \
                     FROM subscriptions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.as_ref().map(subscription_row).transpose()?)
            }

            async fn subscriptions(
                &mut self,
                subjects: Option<&[(String, String)]>,
            ) -> StoreResult<Vec<SubscriptionRow>> {
                let rows = sqlx::query(
                    "SELECT id, scope, subject, channel, target, events, created_by, created_at \
                     FROM subscriptions ORDER BY created_at, id",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                let rows: Vec<SubscriptionRow> =
                    rows.iter().map(subscription_row).collect::<Result<_, _>>()?;
                // A few per domain, team and product: filtered here rather than with a query
                // per subject.
                Ok(match subjects {
                    None => rows,
                    Some(subjects) => rows
                        .into_iter()
                        .filter(|r| subjects.iter().any(|(scope, subject)| {
                            *scope == r.scope && *subject == r.subject
                        }))
                        .collect(),
                })
            }

            async fn last_fingerprint(&mut self, product: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query(
                    "SELECT fingerprint FROM schedule_slots WHERE product = $1 \
                     AND state IN ('succeeded', 'skipped') AND fingerprint IS NOT NULL \
                     ORDER BY slot_at DESC LIMIT 1",
                )
                .bind(product)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(row.map(|r| r.try_get("fingerprint")).transpose()?)
            }

            async fn scheduled(&mut self) -> StoreResult<Vec<ScheduledRow>> {
                let rows = sqlx::query(
                    "SELECT p.id, p.domain, p.status, v.version, v.digest, v.published_at, v.schedule \
                     FROM products p JOIN product_versions v ON v.product = p.id AND v.version = p.latest \
                     WHERE v.schedule IS NOT NULL ORDER BY p.id",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                let mut out: Vec<ScheduledRow> = rows
                    .iter()
                    .map(|r| {
                        Ok::<_, sqlx::Error>(ScheduledRow {
                            product: r.try_get("id")?,
                            domain: r.try_get("domain")?,
                            status: r.try_get("status")?,
                            version: r.try_get("version")?,
                            digest: r.try_get("digest")?,
                            published_at: r.try_get("published_at")?,
                            schedule: r.try_get("schedule")?,
                            upstream: Vec::new(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                // The upstream products of each one's input ports (a contract id names one
                // product's port).
                let edges = sqlx::query(
                    "SELECT DISTINCT d.product, c.product AS upstream FROM dependencies d \
                     JOIN products p ON p.id = d.product AND p.latest = d.version \
                     JOIN product_versions v ON v.product = p.id AND v.version = p.latest \
                     JOIN port_contracts c ON c.contract_id = d.contract_id \
                     WHERE v.schedule IS NOT NULL AND c.product <> d.product \
                     ORDER BY d.product, upstream",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                // (The database's collation orders ids its own way: found by name, not by order.)
                let at: std::collections::HashMap<String, usize> =
                    out.iter().enumerate().map(|(i, s)| (s.product.clone(), i)).collect();
                for e in &edges {
                    let product: String = e.try_get("product")?;
                    if let Some(&i) = at.get(&product) {
                        out[i].upstream.push(e.try_get("upstream")?);
                    }
                }
                Ok(out)
            }

            async fn put_rate_bucket(&mut self, key: &str, tokens: f64, at_ms: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO rate_buckets (key, tokens, at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at_ms = excluded.at_ms",
                )
                .bind(key)
                .bind(tokens)
                .bind(at_ms)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn usage(
                &mut self,
                product: Option<&str>,
                reader: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<UsageRow>> {
                let rows = sqlx::query(
                    "SELECT reader, product, port, major, reads, rows_read, first_at, last_at \
                     FROM port_usage WHERE ($1 IS NULL OR product = $1) \
                     AND ($2 IS NULL OR reader = $2) \
                     ORDER BY last_at DESC, reader, product, port, major LIMIT $3",
                )
                .bind(product)
                .bind(reader)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(UsageRow {
                            reader: r.try_get("reader")?,
                            product: r.try_get("product")?,
                            port: r.try_get("port")?,
                            major: r.try_get("major")?,
                            reads: r.try_get("reads")?,
                            rows_read: r.try_get("rows_read")?,
                            first_at: r.try_get("first_at")?,
                            last_at: r.try_get("last_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn insert_observations(&mut self, rows: &[ObservationRow]) -> StoreResult<()> {
                for o in rows {
                    if o.kind == "probe" {
                        // Probes are counted per hour (the hour is the stamp's first 13 bytes).
                        let hour = format!("{}:00:00.000Z", o.at.get(..13).unwrap_or(&o.at));
                        sqlx::query(
                            "INSERT INTO port_probes \
                             (product, port, major, hour, probes, failures, last_at, last_error) \
                             VALUES ($1, $2, $3, $4, 1, $5, $6, $7) \
                             ON CONFLICT (product, port, major, hour) DO UPDATE SET \
                             probes = port_probes.probes + 1, \
                             failures = port_probes.failures + excluded.failures, \
                             last_at = excluded.last_at, \
                             last_error = COALESCE(excluded.last_error, port_probes.last_error)",
                        )
                        .bind(&o.product)
                        .bind(&o.port)
                        .bind(o.major)
                        .bind(hour)
                        .bind(i64::from(o.error.is_some()))
                        .bind(&o.at)
                        .bind(&o.error)
                        .execute(&mut *self.tx)
                        .await?;
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO port_observations \
                         (product, port, major, at, kind, latency_ms, rows_read, error) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&o.product)
                    .bind(&o.port)
                    .bind(o.major)
                    .bind(&o.at)
                    .bind(&o.kind)
                    .bind(o.latency_ms)
                    .bind(o.rows_read)
                    .bind(&o.error)
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(())
            }

            async fn observation_stats_between(
                &mut self,
                from: &str,
                upto: &str,
                since: &str,
            ) -> StoreResult<Vec<ObservationStats>> {
                // Added up in the database: a pass reads a few rows per port, not every read.
                let counts = sqlx::query(
                    "SELECT product, port, major, kind, COUNT(*) AS n, \
                     SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS errors \
                     FROM port_observations \
                     WHERE product >= $1 AND product <= $2 \
                     AND at >= $3 GROUP BY product, port, major, kind \
                     ORDER BY product, port, major, kind",
                )
                .bind(from)
                .bind(upto)
                .bind(since)
                .fetch_all(&mut *self.tx)
                .await?;
                let probes = sqlx::query(
                    "SELECT product, port, major, CAST(SUM(probes) AS BIGINT) AS n, CAST(SUM(failures) AS BIGINT) AS errors \
                     FROM port_probes WHERE product >= $1 AND product <= $2 AND hour >= $3 \
                     GROUP BY product, port, major ORDER BY product, port, major",
                )
                .bind(from)
                .bind(upto)
                .bind(format!("{}:00:00.000Z", since.get(..13).unwrap_or(since)))
                .fetch_all(&mut *self.tx)
                .await?;
                // Nearest rank: the ceil(p * n)-th latency, in integers both databases agree on.
                let ranks = sqlx::query(
                    "SELECT product, port, major, rn, n, latency_ms FROM ( \
                       SELECT product, port, major, latency_ms, \
                       ROW_NUMBER() OVER (PARTITION BY product, port, major ORDER BY latency_ms) AS rn, \
                       COUNT(*) OVER (PARTITION BY product, port, major) AS n \
                       FROM port_observations \
                       WHERE product >= $1 AND product <= $2 \
                       AND at >= $3 AND kind = 'read' AND error IS NULL \
                     ) ranked \
                     WHERE rn = (50 * n + 99) / 100 OR rn = (95 * n + 99) / 100 \
                     OR rn = (99 * n + 99) / 100",
                )
                .bind(from)
                .bind(upto)
                .bind(since)
                .fetch_all(&mut *self.tx)
                .await?;
                let mut stats: std::collections::BTreeMap<(String, String, i64), ObservationStats> =
                    std::collections::BTreeMap::new();
                for r in &counts {
                    let key: (String, String, i64) =
                        (r.try_get("product")?, r.try_get("port")?, r.try_get("major")?);
                    let kind: String = r.try_get("kind")?;
                    let n: i64 = r.try_get("n")?;
                    let errors: i64 = r.try_get("errors")?;
                    let s = stats.entry(key.clone()).or_insert_with(|| ObservationStats {
                        product: key.0,
                        port: key.1,
                        major: key.2,
                        ..ObservationStats::default()
                    });
                    if kind == "probe" {
                        s.probes += n;
                        s.probe_errors += errors;
                    } else {
                        s.reads += n;
                        s.read_errors += errors;
                    }
                }
                for r in &probes {
                    let key: (String, String, i64) =
                        (r.try_get("product")?, r.try_get("port")?, r.try_get("major")?);
                    let s = stats.entry(key.clone()).or_insert_with(|| ObservationStats {
                        product: key.0,
                        port: key.1,
                        major: key.2,
                        ..ObservationStats::default()
                    });
                    s.probes += r.try_get::<i64, _>("n")?;
                    s.probe_errors += r.try_get::<i64, _>("errors")?;
                }
                for r in &ranks {
                    let key: (String, String, i64) =
                        (r.try_get("product")?, r.try_get("port")?, r.try_get("major")?);
                    let (rn, n): (i64, i64) = (r.try_get("rn")?, r.try_get("n")?);
                    let latency: f64 = r.try_get("latency_ms")?;
                    if let Some(s) = stats.get_mut(&key) {
                        for (p, slot) in [(50, &mut s.p50_ms), (95, &mut s.p95_ms), (99, &mut s.p99_ms)] {
                            if rn == (p * n + 99) / 100 {
                                *slot = Some(latency);
                            }
                        }
                    }
                }
                Ok(stats.into_values().collect())
            }

            async fn prune_observations(&mut self, before: &str) -> StoreResult<u64> {
                let reads = sqlx::query("DELETE FROM port_observations WHERE at < $1")
                    .bind(before)
                    .execute(&mut *self.tx)
                    .await?;
                let probes = sqlx::query("DELETE FROM port_probes WHERE hour < $1")
                    .bind(format!("{}:00:00.000Z", before.get(..13).unwrap_or(before)))
                    .execute(&mut *self.tx)
                    .await?;
                Ok(reads.rows_affected() + probes.rows_affected())
            }

            async fn all_snapshots(&mut self) -> StoreResult<Vec<SnapshotRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", snapshot_cols!(), " FROM snapshots ORDER BY product, port, major"
                ))
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(snapshot_row).collect::<Result<_, _>>()?)
            }

            async fn snapshots_between(
                &mut self,
                from: &str,
                upto: &str,
            ) -> StoreResult<Vec<SnapshotRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", snapshot_cols!(), " FROM snapshots \
                     WHERE product >= $1 AND product <= $2 ORDER BY product, port, major"
                ))
                .bind(from)
                .bind(upto)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(snapshot_row).collect::<Result<_, _>>()?)
            }

            async fn runs_between(
                &mut self,
                from: &str,
                upto: &str,
                since: &str,
            ) -> StoreResult<Vec<RunRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", run_cols!(), " FROM ( \
                       SELECT runs.*, ROW_NUMBER() OVER \
                       (PARTITION BY product, port, major ORDER BY started_at DESC, id DESC) AS recent \
                       FROM runs \
                       WHERE product >= $1 AND product <= $2 \
                     ) ranked \
                     WHERE (started_at >= $3 AND recent <= $4) OR id IN (SELECT run FROM snapshots \
                          WHERE product >= $1 AND product <= $2) \
                     ORDER BY product, port, started_at, id"
                ))
                .bind(from)
                .bind(upto)
                .bind(since)
                .bind(crate::store::RECENT_RUNS)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
            }

            async fn run_counts(&mut self) -> StoreResult<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "SELECT state, COUNT(*) AS n FROM runs GROUP BY state ORDER BY state",
                )
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn insert_violation(&mut self, row: &ViolationRow) -> StoreResult<bool> {
                // ON CONFLICT, not a caught error: PostgreSQL aborts a transaction on a unique
                // violation, and the rest of the pass must still commit.
                let done = sqlx::query(
                    "INSERT INTO sla_violations (id, product, port, major, property, objective, \
                     observed, started_at, detected_at, ended_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (product, port, major, property) WHERE ended_at IS NULL DO NOTHING",
                )
                .bind(&row.id)
                .bind(&row.product)
                .bind(&row.port)
                .bind(row.major)
                .bind(&row.property)
                .bind(&row.objective)
                .bind(&row.observed)
                .bind(&row.started_at)
                .bind(&row.detected_at)
                .bind(&row.ended_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn end_violation(&mut self, id: &str, at: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sla_violations SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn open_violations_between(
                &mut self,
                from: &str,
                upto: &str,
            ) -> StoreResult<Vec<ViolationRow>> {
                let rows = sqlx::query(
                    "SELECT id, product, port, major, property, objective, observed, started_at, \
                     detected_at, ended_at FROM sla_violations \
                     WHERE product >= $1 AND product <= $2 AND ended_at IS NULL \
                     ORDER BY product, port, major, property",
                )
                .bind(from)
                .bind(upto)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(violation_row).collect::<Result<_, _>>()?)
            }

            async fn violations(
                &mut self,
                product: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<ViolationRow>> {
                let rows = sqlx::query(
                    "SELECT id, product, port, major, property, objective, observed, started_at, \
                     detected_at, ended_at FROM sla_violations WHERE ($1 IS NULL OR product = $1) \
                     ORDER BY started_at DESC, id LIMIT $2",
                )
                .bind(product)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(rows.iter().map(violation_row).collect::<Result<_, _>>()?)
            }

            async fn insert_delivery(&mut self, row: &DeliveryRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, url, event, subject, payload, state, \
                     attempts, last_status, last_error, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&row.id)
                .bind(&row.url)
                .bind(&row.event)
                .bind(&row.subject)
                .bind(&row.payload)
                .bind(&row.state)
                .bind(row.attempts)
                .bind(row.last_status)
                .bind(&row.last_error)
                .bind(&row.created_at)
                .bind(&row.updated_at)
                .execute(&mut *self.tx)
                .await
                .map_err(conflict("a delivery with this id"))?;
                Ok(())
            }

            async fn update_delivery(&mut self, row: &DeliveryRow) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = $2, attempts = $3, last_status = $4, \
                     last_error = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(&row.id)
                .bind(&row.state)
                .bind(row.attempts)
                .bind(row.last_status)
                .bind(&row.last_error)
                .bind(&row.updated_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn deliveries(&mut self, limit: i64) -> StoreResult<Vec<DeliveryRow>> {
                let rows = sqlx::query(
                    "SELECT id, url, event, subject, payload, state, attempts, last_status, \
                     last_error, created_at, updated_at FROM webhook_deliveries \
                     ORDER BY created_at DESC, id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DeliveryRow {
                            id: r.try_get("id")?,
                            url: r.try_get("url")?,
                            event: r.try_get("event")?,
                            subject: r.try_get("subject")?,
                            payload: r.try_get("payload")?,
                            state: r.try_get("state")?,
                            attempts: r.try_get("attempts")?,
                            last_status: r.try_get("last_status")?,
                            last_error: r.try_get("last_error")?,
                            created_at: r.try_get("created_at")?,
                            updated_at: r.try_get("updated_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }
        }
    };
}

mod sqlite {
    use super::*;
    row_readers!(sqlx::sqlite::SqliteRow);

    pub(super) struct SqliteTx {
        pub(super) tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        /// Held by write transactions: SQLite has one writer at a time, and queueing writers
        /// here is fairer and faster than its busy-wait sleeps.
        pub(super) _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    }
    // One writer at a time: sequence numbers are visible in order already.
    sql_tx!(SqliteTx, "");
}

mod postgres {
    use super::*;
    row_readers!(sqlx::postgres::PgRow);

    pub(super) struct PgTx {
        pub(super) tx: sqlx::Transaction<'static, sqlx::Postgres>,
    }
    // A BIGSERIAL is taken at insert and seen at commit, so two writers can publish seq 11
    // before seq 10 and a reader paging by sequence would skip 10. Appending under one
    // transaction-scoped lock makes events commit in sequence order.
    sql_tx!(PgTx, "SELECT pg_advisory_xact_lock(7404242001)");
}

/// The embedded catalog: one SQLite file (WAL mode), e.g. `.mesh/catalog.db`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    /// One writer at a time within this process (other processes wait in SQLite's busy handler).
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating when missing) and migrates `sqlite://PATH` or a plain path.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(sqlite::SqliteTx {
            tx: self.pool.begin().await?,
            _writer: None,
        }))
    }

    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        Ok(Box::new(sqlite::SqliteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _writer: Some(writer),
        }))
    }
}

/// The shared catalog: a PostgreSQL database that many `mesh serve` instances use at once.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: sqlx::PgPool,
}

impl PostgresStore {
    /// Creates database `name` on the server `url` points at (dropping one of that name first
    /// when `replace`), and returns the URL of the new database. For tests and benchmarks that
    /// need an empty catalog each. `name` must be a plain identifier (`[a-z0-9_]`, 63 at most).
    pub async fn create_database(url: &str, name: &str, replace: bool) -> StoreResult<String> {
        use sqlx::Connection;
        let plain = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let bad = |why: String| StoreError::Database(sqlx::Error::Configuration(why.into()));
        if !plain {
            return Err(bad(format!("`{name}` is not a plain database name")));
        }
        let (server, query) = url
            .split_once('?')
            .map_or((url, None), |(u, q)| (u, Some(q)));
        let (base, _) = server
            .rsplit_once('/')
            .ok_or_else(|| bad(format!("`{url}` names no database")))?;
        let mut admin = sqlx::PgConnection::connect(url).await?;
        // `name` was checked above: an identifier needs no quoting and cannot inject.
        if replace {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut admin)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        Ok(match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        })
    }

    /// Connects to `postgres://...` and migrates.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(postgres::PgTx {
            tx: self.pool.begin().await?,
        }))
    }

    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(postgres::PgTx {
            tx: self.pool.begin().await?,
        }))
    }
}

/// Opens the store a URL names: `sqlite://PATH` (or a plain path) or `postgres://...`.
pub async fn open(url: &str) -> StoreResult<Arc<dyn CatalogStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Ok(Arc::new(SqliteStore::open(url).await?))
    }
}

// The queries that page through a whole table (a server's start, `mesh products`): each page
// must start where the last ended by the index, not scan from the first row, or reading a
// catalog of N rows costs N²/page rows (see `paging_seeks_by_the_index`). The first page starts
// after the empty key (every id, name and origin is longer), never with `$1 IS NULL OR`, which
// keeps SQLite (and PostgreSQL's generic plans) from seeking.

const PRODUCTS_PAGE: &str = concat!(
    "SELECT ",
    product_cols!(),
    " FROM products WHERE ($1 IS NULL OR domain = $1) AND id > $2 ORDER BY id LIMIT $3"
);

const LATEST_VERSIONS_PAGE: &str = concat!(
    "SELECT p.id, p.domain, p.team, p.name, p.latest, p.status AS product_status, ",
    "p.revision AS product_revision, p.created_at, p.updated_at, ",
    "v.product, v.version, v.major, v.status, v.digest, v.descriptor, v.published_by, ",
    "v.published_at, v.sunset, v.migration_guide, v.deprecated_at, v.revision, ",
    "v.transform, v.schedule ",
    "FROM products p JOIN product_versions v ON v.product = p.id AND v.version = p.latest ",
    "WHERE p.id > $1 ORDER BY p.id LIMIT $2"
);

const LATEST_PORTS_PAGE: &str = concat!(
    "SELECT c.product, c.version, c.port, c.major, c.contract_id, c.compatibility, c.digest, c.contract ",
    "FROM products p JOIN port_contracts c ON c.product = p.id AND c.version = p.latest ",
    "WHERE p.id > $1 AND p.id <= $2 ORDER BY p.id, c.port"
);

const LINEAGE_PAGE: &str = "SELECT origin, source, target FROM lineage_edges \
     WHERE (origin, source, target) > ($1, $2, $3) ORDER BY origin, source, target LIMIT $4";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every paging query seeks its first row by the index (SQLite's plan says SEARCH, not
    /// SCAN, for the paged table). A scan from the first row per page made a server's start on
    /// a 1M-product catalog take minutes (bench/discovery.sh).
    #[tokio::test]
    async fn paging_seeks_by_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let store = SqliteStore::open(path.to_str().expect("utf-8"))
            .await
            .expect("open");
        let plan = |sql: &'static str, binds: Vec<Option<&'static str>>| {
            let pool = store.pool.clone();
            async move {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
                for b in binds {
                    q = q.bind(b);
                }
                let rows = q.fetch_all(&pool).await.expect("explain");
                rows.iter()
                    .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let page = Some("m");
        for (what, table, sql, binds) in [
            (
                "products",
                "products",
                PRODUCTS_PAGE,
                vec![None, page, Some("100")],
            ),
            (
                "latest versions",
                "p",
                LATEST_VERSIONS_PAGE,
                vec![page, Some("100")],
            ),
            (
                "latest ports",
                "c",
                LATEST_PORTS_PAGE,
                vec![page, Some("z")],
            ),
            (
                "lineage",
                "lineage_edges",
                LINEAGE_PAGE,
                vec![page, Some("b"), Some("c"), Some("100")],
            ),
        ] {
            let plan = plan(sql, binds).await;
            assert!(
                !plan.contains(&format!("SCAN {table}")),
                "{what}: each page scans from the first row: {plan}"
            );
        }
    }
}
