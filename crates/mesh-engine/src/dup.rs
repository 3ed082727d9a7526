//! Duplicate keys found inside the one fused scan, with 8 bytes of memory per row.
//!
//! A `GROUP BY key HAVING count(*) > 1` holds every distinct key (strings and all) in a hash
//! table — over a gigabyte for 10 million order ids. Instead, the aggregate [`dup_hashes`]
//! collects a 64-bit hash per row (each partition sorts its own, in parallel), and the final step
//! merges the sorted runs and keeps the hashes seen more than once: the *candidates*.
//!
//! Candidates are then verified exactly: only rows whose [`key_hash`] is a candidate are grouped
//! by their real key, so a hash collision between two different keys can never be reported as a
//! duplicate, and the counts (duplicated keys, rows they span) are exact. Clean data has no
//! candidates and needs no second pass.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt64Array};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

/// The seed of the key hash: fixed, so the aggregate and the verifying filter agree.
const SEED: u64 = 0x6d65_7368_6475_7073;

fn state() -> RandomState {
    RandomState::with_seed(SEED)
}

/// Hashes of the rows whose key columns are all set; `None` for rows with a null key part.
fn row_hashes(columns: &[ArrayRef]) -> Result<(Vec<u64>, Option<NullBuffer>)> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut hashes = vec![0u64; rows];
    create_hashes(columns, &state(), &mut hashes)?;
    let nulls = columns.iter().fold(None, |acc: Option<NullBuffer>, c| {
        NullBuffer::union(acc.as_ref(), c.logical_nulls().as_ref())
    });
    Ok((hashes, nulls))
}

fn list_of(values: Vec<u64>) -> ScalarValue {
    let len = values.len();
    let list = ListArray::new(
        Arc::new(Field::new_list_field(DataType::UInt64, false)),
        OffsetBuffer::from_lengths([len]),
        Arc::new(UInt64Array::from(values)),
        None,
    );
    ScalarValue::List(Arc::new(list))
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false)))
}

/// `mesh_dup_hashes(key, ...)`: the hashes of keys that occur more than once (candidates).
pub fn dup_hashes() -> AggregateUDF {
    AggregateUDF::from(DupHashes {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DupHashes {
    signature: Signature,
}

impl AggregateUDFImpl for DupHashes {
    fn name(&self) -> &str {
        "mesh_dup_hashes"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(list_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(DupAccumulator::default()))
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            "sorted_hashes",
            list_type(),
            true,
        ))])
    }
}

#[derive(Debug, Default)]
struct DupAccumulator {
    /// Hashes of rows read by this accumulator.
    hashes: Vec<u64>,
    /// Sorted runs received from partial accumulators, as they came (the partials' own
    /// buffers, not copies: at 100M rows a copy is 800 MB more at the peak).
    runs: Vec<UInt64Array>,
}

impl Accumulator for DupAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (hashes, nulls) = row_hashes(values)?;
        match nulls {
            None => self.hashes.extend_from_slice(&hashes),
            Some(nulls) => self.hashes.extend(
                hashes
                    .iter()
                    .zip(nulls.iter())
                    .filter(|(_, ok)| *ok)
                    .map(|(h, _)| *h),
            ),
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // Sorting here runs in every partition at once; the final step only merges.
        let mut all = std::mem::take(&mut self.hashes);
        sort_hashes(&mut all);
        for run in std::mem::take(&mut self.runs) {
            all = merge_two(&all, run.values());
        }
        Ok(vec![list_of(all)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                continue;
            }
            let values = lists.value(i);
            let run = values.as_primitive::<UInt64Type>().clone();
            if !run.is_empty() {
                self.runs.push(run);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let runs = std::mem::take(&mut self.runs);
        let mut own = std::mem::take(&mut self.hashes);
        sort_hashes(&mut own);
        let mut slices: Vec<&[u64]> = runs.iter().map(|r| &r.values()[..]).collect();
        if !own.is_empty() {
            slices.push(&own);
        }
        Ok(list_of(repeated(&slices)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + 8 * (self.hashes.capacity() + self.runs.iter().map(|r| r.len()).sum::<usize>())
    }
}

/// Sorts hashes by their bits, 11 at a time from the lowest (an LSD radix sort): six linear
/// passes, several times faster than a comparison sort on millions of evenly spread hashes.
fn sort_hashes(values: &mut Vec<u64>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    if values.len() < 1 << 12 {
        values.sort_unstable();
        return;
    }
    let mut scratch = vec![0u64; values.len()];
    let mut shift = 0;
    while shift < 64 {
        let digit = |v: u64| ((v >> shift) as usize) & (BUCKETS - 1);
        let mut starts = [0usize; BUCKETS];
        for &v in values.iter() {
            starts[digit(v)] += 1;
        }
        // Every value in one bucket: this digit orders nothing.
        if starts.contains(&values.len()) {
            shift += BITS;
            continue;
        }
        let mut sum = 0;
        for start in &mut starts {
            let n = *start;
            *start = sum;
            sum += n;
        }
        for &v in values.iter() {
            let d = digit(v);
            scratch[starts[d]] = v;
            starts[d] += 1;
        }
        std::mem::swap(values, &mut scratch);
        shift += BITS;
    }
}

fn merge_two(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The values that occur more than once across sorted runs (a k-way merge, no copy).
fn repeated(runs: &[&[u64]]) -> Vec<u64> {
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut pos = vec![0usize; runs.len()];
    for (r, run) in runs.iter().enumerate() {
        if let Some(v) = run.first() {
            heap.push(Reverse((*v, r)));
        }
    }
    let mut out = Vec::new();
    let mut last: Option<u64> = None;
    let mut seen = 0usize;
    while let Some(Reverse((v, r))) = heap.pop() {
        if Some(v) == last {
            seen += 1;
            if seen == 2 {
                out.push(v);
            }
        } else {
            last = Some(v);
            seen = 1;
        }
        pos[r] += 1;
        if let Some(next) = runs[r].get(pos[r]) {
            heap.push(Reverse((*next, r)));
        }
    }
    out
}

/// `mesh_key_hash(key, ...)`: the same hash per row, to find the candidates' rows again.
pub fn key_hash() -> ScalarUDF {
    ScalarUDF::from(KeyHash {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        "mesh_key_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let columns: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let (hashes, nulls) = row_hashes(&columns)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::new(
            hashes.into(),
            nulls,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_across_runs() {
        let runs: [&[u64]; 3] = [&[1, 3, 5, 5, 9], &[2, 3, 7], &[9]];
        assert_eq!(repeated(&runs), vec![3, 5, 9]);
        assert!(repeated(&[&[1, 2], &[3]]).is_empty());
    }

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut values: Vec<u64> = (0..50_000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Some repeats, some values sharing their high or low bits.
                match i % 7 {
                    0 => 42,
                    1 => state & 0xffff,
                    2 => state | 0xffff_0000_0000_0000,
                    _ => state,
                }
            })
            .collect();
        let mut expected = values.clone();
        expected.sort_unstable();
        sort_hashes(&mut values);
        assert_eq!(values, expected);
        let mut same = vec![7u64; 10_000];
        sort_hashes(&mut same);
        assert_eq!(same, vec![7u64; 10_000]);
    }

    #[test]
    fn merge_keeps_order() {
        assert_eq!(merge_two(&[1, 4, 6], &[2, 4, 9]), vec![1, 2, 4, 4, 6, 9]);
    }

    /// Partial accumulators' reservations count their hashes until their streams end, which
    /// can be after the final step has merged their states: the final step counting them again
    /// made a check that fits in the pool fail for want of memory (seen at 100M rows).
    #[test]
    fn merged_hashes_are_counted_once() {
        let mut accs = accumulators();
        let keys: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..100_000));
        let mut final_step = accs.pop().expect("three");
        for (i, partial) in accs.iter_mut().enumerate() {
            partial
                .update_batch(&[keys.slice(i * 50_000, 50_000)])
                .expect("update");
            let states: Vec<ArrayRef> = partial
                .state()
                .expect("state")
                .iter()
                .map(|v| v.to_array().expect("array"))
                .collect();
            final_step.merge_batch(&states).expect("merge");
        }
        assert!(
            final_step.size() < 64 << 10,
            "the final step counts {} bytes for hashes the partials count",
            final_step.size()
        );
        let ScalarValue::List(found) = final_step.evaluate().expect("evaluate") else {
            panic!("a list");
        };
        assert_eq!(found.value(0).len(), 0);
    }

    /// Two partial accumulators and a final one.
    fn accumulators() -> Vec<DupAccumulator> {
        (0..3).map(|_| DupAccumulator::default()).collect()
    }
}
