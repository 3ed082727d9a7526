//! A record batch as DataRow messages, a batch at a time.
//!
//! arrow-pg encodes a value at a time: for every value it looks the column's type up again, and
//! every row gets a buffer of its own. Here each column is looked at once per batch, the common
//! types (booleans, integers, floats, text, and in binary dates and timestamps) are written
//! straight from their arrays, and all the rows of a batch share one buffer (each DataRow is a
//! slice of it). Any other type is written by arrow-pg's own value encoder, into the same buffer,
//! so every type arrow-pg knows still works.

use bytes::{BufMut as _, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, Date32Array, Float32Array, Float64Array,
    GenericStringArray, Int16Array, Int32Array, Int64Array, StringViewArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType,
};
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire;
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

use mesh_engine::query::RecordBatch;

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The rows of `batch` as DataRow messages for `fields` (one per column, in order).
pub(crate) fn encode(batch: &RecordBatch, fields: &[FieldInfo]) -> PgWireResult<Vec<DataRow>> {
    let columns = columns(batch, fields)?;
    let rows = batch.num_rows();
    let mut out = Rows {
        buf: BytesMut::with_capacity(guess(batch, columns.len())),
        count: 0,
    };
    let mut encoded = Vec::with_capacity(rows);
    for row in 0..rows {
        for column in &columns {
            column.write(&mut out, row)?;
        }
        encoded.push(out.take_row());
    }
    Ok(encoded)
}

/// The rows of `batch` as whole DataRow messages (type byte, length, values) appended to `out`,
/// ready to be written to the socket. On an error `out` holds the rows before the one that
/// failed, each whole.
pub(crate) fn encode_messages(
    batch: &RecordBatch,
    fields: &[FieldInfo],
    out: &mut BytesMut,
) -> PgWireResult<()> {
    let columns = columns(batch, fields)?;
    let count = i16::try_from(columns.len())
        .map_err(|_| PgWireError::ApiError("more than 32767 result columns".into()))?;
    let mut rows = Rows {
        buf: std::mem::take(out),
        count: 0,
    };
    rows.buf
        .reserve(guess(batch, columns.len()) + batch.num_rows() * 7);
    let written = (0..batch.num_rows()).try_for_each(|row| {
        let start = rows.buf.len();
        rows.buf.put_u8(b'D');
        rows.buf.put_i32(0);
        rows.buf.put_i16(count);
        rows.count = 0;
        let whole = columns
            .iter()
            .try_for_each(|c| c.write(&mut rows, row))
            .and_then(|()| {
                i32::try_from(rows.buf.len() - start - 1)
                    .map_err(|_| PgWireError::ApiError("a row larger than 2 GiB".into()))
            });
        match whole {
            Ok(len) => rows.buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes()),
            Err(_) => rows.buf.truncate(start),
        }
        whole.map(drop)
    });
    *out = rows.buf;
    written
}

/// The columns of `batch`, each looked at once.
fn columns<'a>(batch: &'a RecordBatch, fields: &'a [FieldInfo]) -> PgWireResult<Vec<Column<'a>>> {
    if batch.num_columns() != fields.len() {
        return Err(PgWireError::ApiError(
            format!(
                "a batch of {} columns for {} result fields",
                batch.num_columns(),
                fields.len()
            )
            .into(),
        ));
    }
    Ok(batch
        .columns()
        .iter()
        .zip(batch.schema_ref().fields().iter())
        .zip(fields)
        .map(|((array, arrow), pg)| Column::of(array, arrow, pg))
        .collect())
}

/// Values take about what their arrays take; each also has a 4-byte length. The buffer grows if
/// the guess is short, and is never guessed past 64 MiB.
fn guess(batch: &RecordBatch, columns: usize) -> usize {
    batch
        .get_array_memory_size()
        .saturating_add(batch.num_rows().saturating_mul(4 * columns + 2))
        .min(64 << 20)
}

/// One column of a batch, looked at once: a typed array where the value can be written
/// directly, or arrow-pg's encoder for the rest.
enum Column<'a> {
    Bool(&'a BooleanArray, &'a FieldInfo),
    Int2(&'a Int16Array, &'a FieldInfo),
    Int4(&'a Int32Array, &'a FieldInfo),
    Int8(&'a Int64Array, &'a FieldInfo),
    Float4(&'a Float32Array, &'a FieldInfo),
    Float8(&'a Float64Array, &'a FieldInfo),
    Text(&'a GenericStringArray<i32>),
    LargeText(&'a GenericStringArray<i64>),
    TextView(&'a StringViewArray),
    /// Binary format only.
    Date(&'a Date32Array),
    /// Binary format only.
    Timestamp(&'a TimestampMicrosecondArray),
    Other(&'a ArrayRef, &'a Field, &'a FieldInfo),
}

impl<'a> Column<'a> {
    fn of(array: &'a ArrayRef, arrow: &'a Field, pg: &'a FieldInfo) -> Column<'a> {
        let binary = pg.format() == FieldFormat::Binary;
        let ty = pg.datatype();
        // Field metadata marks the pg_catalog's special columns (oid, "char", vectors), which
        // arrow-pg encodes in their own way.
        if !arrow.metadata().is_empty() {
            return Column::Other(array, arrow, pg);
        }
        match (array.data_type(), ty) {
            (DataType::Boolean, &Type::BOOL) => Column::Bool(array.as_boolean(), pg),
            (DataType::Int16, &Type::INT2) => Column::Int2(array.as_primitive::<Int16Type>(), pg),
            (DataType::Int32, &Type::INT4) => Column::Int4(array.as_primitive::<Int32Type>(), pg),
            (DataType::Int64, &Type::INT8) => Column::Int8(array.as_primitive::<Int64Type>(), pg),
            (DataType::Float32, &Type::FLOAT4) => {
                Column::Float4(array.as_primitive::<Float32Type>(), pg)
            }
            (DataType::Float64, &Type::FLOAT8) => {
                Column::Float8(array.as_primitive::<Float64Type>(), pg)
            }
            (DataType::Utf8, &Type::TEXT | &Type::VARCHAR) => Column::Text(array.as_string()),
            (DataType::LargeUtf8, &Type::TEXT | &Type::VARCHAR) => {
                Column::LargeText(array.as_string())
            }
            (DataType::Utf8View, &Type::TEXT | &Type::VARCHAR) => {
                Column::TextView(array.as_string_view())
            }
            (DataType::Date32, &Type::DATE) if binary => {
                Column::Date(array.as_primitive::<Date32Type>())
            }
            (
                DataType::Timestamp(TimeUnit::Microsecond, _),
                &Type::TIMESTAMP | &Type::TIMESTAMPTZ,
            ) if binary => Column::Timestamp(array.as_primitive::<TimestampMicrosecondType>()),
            _ => Column::Other(array, arrow, pg),
        }
    }

    fn write(&self, out: &mut Rows, row: usize) -> PgWireResult<()> {
        match self {
            Column::Bool(a, f) => out.value(a, row, |a, i| a.value(i), f),
            Column::Int2(a, f) => out.value(a, row, |a, i| a.value(i), f),
            Column::Int4(a, f) => out.value(a, row, |a, i| a.value(i), f),
            Column::Int8(a, f) => out.value(a, row, |a, i| a.value(i), f),
            Column::Float4(a, f) => out.value(a, row, |a, i| a.value(i), f),
            Column::Float8(a, f) => out.value(a, row, |a, i| a.value(i), f),
            // Text is the same bytes in the text and the binary format.
            Column::Text(a) => {
                out.bytes((!a.is_null(row)).then(|| a.value(row).as_bytes()));
                Ok(())
            }
            Column::LargeText(a) => {
                out.bytes((!a.is_null(row)).then(|| a.value(row).as_bytes()));
                Ok(())
            }
            Column::TextView(a) => {
                out.bytes((!a.is_null(row)).then(|| a.value(row).as_bytes()));
                Ok(())
            }
            Column::Date(a) => {
                let days = (!a.is_null(row)).then(|| a.value(row).checked_sub(EPOCH_DAYS));
                out.since_epoch(days.map(|d| d.map(i32::to_be_bytes)), "date")
            }
            Column::Timestamp(a) => {
                let micros = (!a.is_null(row)).then(|| a.value(row).checked_sub(EPOCH_MICROS));
                out.since_epoch(micros.map(|m| m.map(i64::to_be_bytes)), "timestamp")
            }
            Column::Other(array, arrow, pg) => encode_value(out, array, row, arrow, pg),
        }
    }
}

fn out_of_range(what: &str) -> PgWireError {
    PgWireError::ApiError(format!("{what} out of range for the PostgreSQL wire").into())
}

/// The rows of one batch in one buffer; each row is split off it when it is complete.
struct Rows {
    buf: BytesMut,
    count: i16,
}

impl Rows {
    fn null(&mut self) {
        self.buf.put_i32(-1);
        self.count += 1;
    }

    /// A value counted from PostgreSQL's epoch: null, past the wire's range (an error, never a
    /// wrapped value), or its bytes.
    fn since_epoch<const N: usize>(
        &mut self,
        value: Option<Option<[u8; N]>>,
        what: &str,
    ) -> PgWireResult<()> {
        match value {
            None => self.null(),
            Some(None) => return Err(out_of_range(what)),
            Some(Some(bytes)) => self.bytes(Some(&bytes)),
        }
        Ok(())
    }

    fn bytes(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.null(),
            Some(bytes) => {
                // A value longer than i32::MAX cannot reach here: the batch's arrays hold it.
                self.buf
                    .put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                self.buf.put_slice(bytes);
                self.count += 1;
            }
        }
    }

    /// A value of a primitive array, through its `ToSql`/`ToSqlText` (the binary forms are a
    /// few bytes; the text forms follow the field's format options, e.g. extra_float_digits).
    fn value<A: Array, T: ToSql + ToSqlText>(
        &mut self,
        array: &A,
        row: usize,
        get: impl Fn(&A, usize) -> T,
        field: &FieldInfo,
    ) -> PgWireResult<()> {
        if array.is_null(row) {
            self.null();
            return Ok(());
        }
        self.encode_field(&get(array, row), field)
    }
}

impl Encoder for Rows {
    type Item = DataRow;

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let at = self.buf.len();
        self.buf.put_i32(-1);
        let written = if field.format() == FieldFormat::Text {
            value.to_sql_text(field.datatype(), &mut self.buf, field.format_options())?
        } else {
            value.to_sql(field.datatype(), &mut self.buf)?
        };
        if let IsNull::No = written {
            let len = self.buf.len() - at - 4;
            let len = i32::try_from(len)
                .map_err(|_| PgWireError::ApiError("a value larger than 2 GiB".into()))?;
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        self.count += 1;
        Ok(())
    }

    fn take_row(&mut self) -> DataRow {
        let count = std::mem::take(&mut self.count);
        DataRow::new(self.buf.split(), count)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use datafusion::arrow::array::{
        Decimal128Array, LargeStringArray, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::Schema;
    use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    use pgwire::api::portal::Format;

    fn batch() -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(Int16Array::from(vec![Some(-3), Some(i16::MAX), None])),
            Arc::new(Int32Array::from(vec![None, Some(7), Some(i32::MIN)])),
            Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(0)])),
            Arc::new(Float32Array::from(vec![Some(1.5), Some(f32::NAN), None])),
            Arc::new(Float64Array::from(vec![
                Some(0.1),
                Some(f64::INFINITY),
                Some(-2.5e300),
            ])),
            Arc::new(StringArray::from(vec![Some("a,b"), None, Some("ü{x}")])),
            Arc::new(LargeStringArray::from(vec![Some(""), Some("long"), None])),
            Arc::new(StringViewArray::from(vec![
                Some("a view longer than twelve bytes"),
                None,
                Some("s"),
            ])),
            Arc::new(Date32Array::from(vec![Some(0), Some(-800_000), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                None,
                Some(-1),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(5), Some(-62_000_000_000_000_000), None])
                    .with_timezone("UTC"),
            ),
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn rows(rows: impl IntoIterator<Item = DataRow>) -> Vec<(i16, Vec<u8>)> {
        rows.into_iter()
            .map(|r| (r.field_count, r.data.to_vec()))
            .collect()
    }

    /// The same bytes as arrow-pg's value-at-a-time encoder, in both formats, for every
    /// column type the fast path takes and one it hands back (decimal).
    #[test]
    fn a_batch_encodes_as_arrow_pg_encodes_it() {
        let batch = batch();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields =
                Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &format, None).unwrap());
            let ours = rows(encode(&batch, &fields).unwrap());
            let theirs =
                rows(encode_recordbatch(Arc::clone(&fields), batch.clone()).map(|r| r.unwrap()));
            assert_eq!(ours, theirs, "{format:?}");
            assert_eq!(ours.len(), 3);
        }
    }

    /// A slice of a batch (an offset into its arrays) encodes only its own rows.
    #[test]
    fn a_sliced_batch_encodes_its_own_rows() {
        let batch = batch().slice(1, 2);
        let fields = Arc::new(
            arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedBinary, None).unwrap(),
        );
        let ours = rows(encode(&batch, &fields).unwrap());
        let theirs =
            rows(encode_recordbatch(Arc::clone(&fields), batch.clone()).map(|r| r.unwrap()));
        assert_eq!(ours, theirs);
    }

    /// Whole messages are the DataRow messages pgwire would have written, back to back.
    #[test]
    fn whole_messages_are_the_rows_pgwire_would_write() {
        use pgwire::messages::Message as _;
        let batch = batch();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields = arrow_schema_to_pg_fields(&batch.schema(), &format, None).unwrap();
            let mut ours = BytesMut::from(&b"before"[..]);
            encode_messages(&batch, &fields, &mut ours).unwrap();
            let mut theirs = BytesMut::from(&b"before"[..]);
            for row in encode(&batch, &fields).unwrap() {
                row.encode(&mut theirs).unwrap();
            }
            assert_eq!(ours, theirs, "{format:?}");
        }
    }

    /// A row that cannot be encoded leaves the rows before it whole, and nothing of itself.
    #[test]
    fn a_failed_row_leaves_only_whole_rows_behind() {
        let column: ArrayRef = Arc::new(Date32Array::from(vec![0, 1, i32::MIN, 2]));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, false)])),
            vec![column],
        )
        .unwrap();
        let fields =
            arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedBinary, None).unwrap();
        let mut out = BytesMut::new();
        assert!(encode_messages(&batch, &fields, &mut out).is_err());
        // Two rows of one 4-byte value: 'D', length 14, 1 field, length 4, the value.
        assert_eq!(out.len(), 2 * 15);
        assert_eq!(&out[..7], &[b'D', 0, 0, 0, 14, 0, 1]);
    }

    #[test]
    fn a_date_past_the_wire_s_range_is_an_error_not_a_wrapped_value() {
        let column: ArrayRef = Arc::new(Date32Array::from(vec![i32::MIN]));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, false)])),
            vec![column],
        )
        .unwrap();
        let fields =
            arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedBinary, None).unwrap();
        let e = encode(&batch, &fields).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}
