//! A catalog that lists its schemas, and schemas that list their tables, in name order.
//!
//! The pg_catalog tables number schemas and tables (their oids) in the order the catalog lists
//! them. DataFusion's in-memory catalog lists in hash order, which differs from one connection to
//! the next, so a tool that looked a table's oid up on one connection of its pool and used it on
//! another would describe some other table. Listed in name order, the same ports get the same
//! oids on every connection of the same principal.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

/// Schemas by name.
#[derive(Debug, Default)]
pub(crate) struct Catalog(RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>);

/// Tables by name.
#[derive(Debug, Default)]
pub(crate) struct Schema(RwLock<BTreeMap<String, Arc<dyn TableProvider>>>);

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl CatalogProvider for Catalog {
    fn schema_names(&self) -> Vec<String> {
        read(&self.0).keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        read(&self.0).get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(write(&self.0).insert(name.to_owned(), schema))
    }
}

#[async_trait]
impl SchemaProvider for Schema {
    fn table_names(&self) -> Vec<String> {
        read(&self.0).keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(read(&self.0).get(name).cloned())
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut tables = write(&self.0);
        if tables.contains_key(&name) {
            return Err(DataFusionError::Execution(format!(
                "the table {name} is already registered"
            )));
        }
        Ok(tables.insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(write(&self.0).remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        read(&self.0).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema as ArrowSchema;
    use datafusion::datasource::empty::EmptyTable;

    #[test]
    fn names_list_in_order_whatever_the_order_they_came_in() {
        let catalog = Catalog::default();
        for name in ["sales", "analytics", "ecommerce"] {
            let schema = Arc::new(Schema::default());
            for table in ["orders", "customers", "b", "a"] {
                let empty = Arc::new(EmptyTable::new(Arc::new(ArrowSchema::empty())));
                schema.register_table(table.to_owned(), empty).unwrap();
            }
            catalog.register_schema(name, schema).unwrap();
        }
        assert_eq!(catalog.schema_names(), ["analytics", "ecommerce", "sales"]);
        let schema = catalog.schema("sales").unwrap();
        assert_eq!(schema.table_names(), ["a", "b", "customers", "orders"]);
        let again = Arc::new(EmptyTable::new(Arc::new(ArrowSchema::empty())));
        assert!(schema.register_table("a".to_owned(), again).is_err());
    }
}
