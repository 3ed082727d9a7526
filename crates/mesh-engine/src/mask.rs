//! Masking in the plan: a column outside a reader's grant keeps its name and type and loses its
//! data (null, `***`, or a SHA-256), in a projection every query and transform goes through.

use datafusion::prelude::{cast, col, lit};
use datafusion::scalar::ScalarValue;

/// How a column outside a grant is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mask {
    /// NULL of the column's type.
    #[default]
    Null,
    /// The column's type kept, every value replaced by `***` (text) or NULL (other types).
    Redacted,
    /// Text replaced by the hex SHA-256 of the value (joins and distinct counts still work,
    /// the value is not shown); other types NULL.
    Hash,
}

impl Mask {
    /// `null`, `redacted` or `hash` (as contracts declare it).
    pub fn parse(text: &str) -> Option<Mask> {
        match text.trim().to_ascii_lowercase().as_str() {
            "null" => Some(Mask::Null),
            "redacted" | "redact" => Some(Mask::Redacted),
            "hash" | "sha256" => Some(Mask::Hash),
            _ => None,
        }
    }
}

/// `df` with every column outside `columns` (`None`: all are shown) masked as `mask_of` says:
/// same name, same type, no data.
pub fn masked(
    df: datafusion::dataframe::DataFrame,
    columns: Option<&[String]>,
    mask_of: &dyn Fn(&str) -> Mask,
) -> datafusion::error::Result<datafusion::dataframe::DataFrame> {
    let Some(columns) = columns else {
        return Ok(df);
    };
    let exprs: Vec<datafusion::prelude::Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = col(datafusion::common::Column::from_name(f.name()));
            if columns.iter().any(|c| c == f.name()) {
                return column;
            }
            let text = matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Utf8
                    | datafusion::arrow::datatypes::DataType::LargeUtf8
                    | datafusion::arrow::datatypes::DataType::Utf8View
            );
            let masked = match mask_of(f.name()) {
                Mask::Redacted if text => lit("***"),
                Mask::Hash if text => datafusion::functions::encoding::expr_fn::encode(
                    datafusion::functions::crypto::expr_fn::sha256(column),
                    lit("hex"),
                ),
                _ => lit(ScalarValue::Null),
            };
            cast(masked, f.data_type().clone()).alias(f.name())
        })
        .collect();
    df.select(exprs)
}
