//! Duplicate keys found inside the one fused scan, with 8 bytes of memory per row.
//!
//! A `GROUP BY key HAVING count(*) > 1` holds every distinct key (strings and all) in a hash
//! table — over a gigabyte for 10 million order ids. Instead, the aggregate [`dup_hashes`]
//! collects a 64-bit hash per row in chunks (each partition sorts its own chunks, in parallel),
//! and the final step keeps the hashes seen more than once — the *candidates* — going through
//! the sorted chunks one top byte at a time. The chunks are never copied or moved into one
//! buffer: they pass from the partitions to the final step through the aggregate's own
//! [`Sink`], in this process, and the partial states carry only a ticket for them. Memory is 8
//! bytes per row and a few megabytes, whatever the allocator does with freed memory.
//!
//! Candidates are then verified exactly: only rows whose [`key_hash`] is a candidate are grouped
//! by their real key, so a hash collision between two different keys can never be reported as a
//! duplicate, and the counts (duplicated keys, rows they span) are exact. Clean data has no
//! candidates and needs no second pass.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt64Array};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{Result, ScalarValue, exec_err};
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
/// Each call is its own aggregate, with its own [`Sink`]: use one per key set and query.
pub fn dup_hashes() -> AggregateUDF {
    AggregateUDF::from(DupHashes {
        signature: Signature::variadic_any(Volatility::Immutable),
        sink: Arc::default(),
    })
}

/// Where partial accumulators leave their sorted chunks for the final one, under a ticket that
/// their state carries. Dropped with the plan, so a query stopped halfway leaves nothing behind.
type Sink = Arc<Mutex<HashMap<u64, Vec<Vec<u64>>>>>;

/// Tickets of deposits in a [`Sink`], unique in the process.
static TICKETS: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct DupHashes {
    signature: Signature,
    sink: Sink,
}

// One aggregate equals only itself: two calls never share their sink.
impl PartialEq for DupHashes {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sink, &other.sink)
    }
}

impl Eq for DupHashes {}

impl std::hash::Hash for DupHashes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.sink).hash(state);
    }
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
        Ok(Box::new(DupAccumulator {
            sink: Arc::clone(&self.sink),
            hashes: Hashes::default(),
            tickets: Vec::new(),
        }))
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new("ticket", DataType::UInt64, true)),
            Arc::new(Field::new("hashes", DataType::UInt64, true)),
        ])
    }
}

#[derive(Debug)]
struct DupAccumulator {
    sink: Sink,
    /// Hashes of rows read by this accumulator.
    hashes: Hashes,
    /// Deposits of partial accumulators this one merged, and how many hashes they hold.
    tickets: Vec<(u64, usize)>,
}

fn lock(sink: &Sink) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Vec<u64>>>> {
    sink.lock().unwrap_or_else(|e| e.into_inner())
}

impl DupAccumulator {
    /// This accumulator's own chunks, sorted, and those of the partials it merged.
    fn all_chunks(&mut self) -> Result<Vec<Vec<u64>>> {
        let mut chunks = std::mem::take(&mut self.hashes).into_sorted_chunks();
        let mut sink = lock(&self.sink);
        for (ticket, count) in std::mem::take(&mut self.tickets) {
            let Some(deposit) = sink.remove(&ticket) else {
                return exec_err!(
                    "the duplicate check's partial results are not in this process \
                     (it cannot run distributed)"
                );
            };
            let held: usize = deposit.iter().map(Vec::len).sum();
            if held != count {
                return exec_err!(
                    "the duplicate check's partial results hold {held} hashes, not {count}"
                );
            }
            chunks.extend(deposit);
        }
        Ok(chunks)
    }
}

impl Accumulator for DupAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (hashes, nulls) = row_hashes(values)?;
        match nulls {
            None => self.hashes.extend(hashes.iter().copied()),
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
        let chunks = self.all_chunks()?;
        let count: usize = chunks.iter().map(Vec::len).sum();
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        lock(&self.sink).insert(ticket, chunks);
        Ok(vec![
            ScalarValue::UInt64(Some(ticket)),
            ScalarValue::UInt64(Some(count as u64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let tickets = states[0].as_primitive::<UInt64Type>();
        let counts = states[1].as_primitive::<UInt64Type>();
        for i in 0..tickets.len() {
            if tickets.is_null(i) || counts.is_null(i) {
                continue;
            }
            let count = counts.value(i) as usize;
            self.tickets.push((tickets.value(i), count));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let chunks = self.all_chunks()?;
        Ok(list_of(repeated(&chunks)))
    }

    fn size(&self) -> usize {
        // Not the merged partials' chunks waiting in the sink: each partial's reservation counts
        // its own until its stream ends, which is after the final step has merged its state.
        // Counting them here too made a check that fits in the pool fail for want of memory.
        std::mem::size_of_val(self) + 8 * self.hashes.capacity()
    }
}

/// Hashes per chunk of [`Hashes`]: 8 MiB.
const CHUNK: usize = 1 << 20;

/// Hashes as they are read, in chunks of at most [`CHUNK`]: growing never copies what is held
/// (a growing `Vec` of 50M hashes holds its old and new buffers at once while it moves).
#[derive(Debug, Default)]
struct Hashes {
    chunks: Vec<Vec<u64>>,
}

impl Hashes {
    fn extend(&mut self, values: impl Iterator<Item = u64>) {
        for v in values {
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => chunk.push(v),
                _ => {
                    // A small first chunk for small inputs; full ones after it.
                    let cap = if self.chunks.is_empty() { 1024 } else { CHUNK };
                    let mut chunk = Vec::with_capacity(cap);
                    chunk.push(v);
                    self.chunks.push(chunk);
                }
            }
        }
    }

    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }

    /// The chunks, each sorted in place (one scratch of a chunk's size for all).
    fn into_sorted_chunks(self) -> Vec<Vec<u64>> {
        let mut chunks = self.chunks;
        let biggest = chunks.iter().map(Vec::len).max().unwrap_or(0);
        let mut scratch = vec![0u64; biggest];
        for chunk in &mut chunks {
            let len = chunk.len();
            radix_sort(chunk, &mut scratch[..len], 64);
        }
        chunks
    }
}

/// Sorts `values` by their lowest `bits` bits (the others being equal), 11 at a time from the
/// lowest (an LSD radix sort): linear passes, several times faster than a comparison sort on
/// millions of evenly spread hashes. `scratch` is as long as `values`.
fn radix_sort(values: &mut [u64], scratch: &mut [u64], bits: u32) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    if values.len() < 1 << 12 {
        values.sort_unstable();
        return;
    }
    // Where the values are now: `values` (false) or `scratch` (true).
    let mut in_scratch = false;
    let mut shift = 0;
    while shift < bits {
        let digit = |v: u64| ((v >> shift) as usize) & (BUCKETS - 1);
        let (from, to): (&[u64], &mut [u64]) = if in_scratch {
            (&*scratch, &mut *values)
        } else {
            (&*values, &mut *scratch)
        };
        let mut starts = [0usize; BUCKETS];
        for &v in from {
            starts[digit(v)] += 1;
        }
        // Every value in one bucket: this digit orders nothing.
        if starts.contains(&from.len()) {
            shift += BITS;
            continue;
        }
        let mut sum = 0;
        for start in &mut starts {
            let n = *start;
            *start = sum;
            sum += n;
        }
        for &v in from {
            let d = digit(v);
            to[starts[d]] = v;
            starts[d] += 1;
        }
        in_scratch = !in_scratch;
        shift += BITS;
    }
    if in_scratch {
        values.copy_from_slice(scratch);
    }
}

/// Above this many hashes, a top-byte bucket is merged in place rather than copied and sorted.
const BUCKET_COPY: usize = 1 << 22;

/// The values that occur more than once across sorted chunks. One top byte at a time, each
/// chunk's values with that byte (a contiguous part of it) are copied together and sorted — a
/// few megabytes for evenly spread hashes; a bucket bigger than [`BUCKET_COPY`] (many rows of
/// one key) is merged where it lies instead.
fn repeated(chunks: &[Vec<u64>]) -> Vec<u64> {
    let mut starts = vec![0usize; chunks.len()];
    let mut out = Vec::new();
    let mut bucket = Vec::new();
    let mut scratch = Vec::new();
    for top in 0..=255u64 {
        let parts: Vec<&[u64]> = chunks
            .iter()
            .zip(starts.iter_mut())
            .map(|(chunk, start)| {
                let rest = &chunk[*start..];
                let len = rest.partition_point(|v| v >> 56 <= top);
                *start += len;
                &rest[..len]
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > BUCKET_COPY {
            out.extend(merged_repeats(&parts));
            continue;
        }
        bucket.clear();
        for part in &parts {
            bucket.extend_from_slice(part);
        }
        scratch.resize(total, 0);
        radix_sort(&mut bucket, &mut scratch, 56);
        for (i, pair) in bucket.windows(2).enumerate() {
            // The second of a run of equal values: each repeated value once.
            if pair[0] == pair[1] && (i == 0 || bucket[i - 1] != pair[0]) {
                out.push(pair[0]);
            }
        }
    }
    out
}

/// The values that occur more than once across sorted runs (a k-way merge, no copy).
fn merged_repeats(runs: &[&[u64]]) -> Vec<u64> {
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

    fn xorshift(n: usize) -> Vec<u64> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect()
    }

    fn naive_repeats(values: &[u64]) -> Vec<u64> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let mut out: Vec<u64> = sorted
            .windows(2)
            .filter(|p| p[0] == p[1])
            .map(|p| p[0])
            .collect();
        out.dedup();
        out
    }

    fn chunks_of(values: &[u64]) -> Vec<Vec<u64>> {
        let mut hashes = Hashes::default();
        hashes.extend(values.iter().copied());
        hashes.into_sorted_chunks()
    }

    #[test]
    fn merged_repeats_across_runs() {
        let runs: [&[u64]; 3] = [&[1, 3, 5, 5, 9], &[2, 3, 7], &[9]];
        assert_eq!(merged_repeats(&runs), vec![3, 5, 9]);
        assert!(merged_repeats(&[&[1, 2], &[3]]).is_empty());
    }

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        let mut values: Vec<u64> = xorshift(50_000)
            .into_iter()
            .enumerate()
            .map(|(i, v)| match i % 7 {
                // Some repeats, some values sharing their high or low bits.
                0 => 42,
                1 => v & 0xffff,
                2 => v | 0xffff_0000_0000_0000,
                _ => v,
            })
            .collect();
        let mut expected = values.clone();
        expected.sort_unstable();
        let mut scratch = vec![0; values.len()];
        radix_sort(&mut values, &mut scratch, 64);
        assert_eq!(values, expected);
        let mut same = vec![7u64; 10_000];
        radix_sort(&mut same, &mut vec![0; 10_000], 64);
        assert_eq!(same, vec![7u64; 10_000]);
    }

    #[test]
    fn repeats_are_found_across_chunks_and_buckets() {
        // Three chunks; repeats inside a chunk, across chunks, in every bucket.
        let mut values = xorshift(2 * CHUNK + 5000);
        for i in (0..values.len()).step_by(997) {
            let j = (i * 7919) % values.len();
            values[j] = values[i];
        }
        values.push(values[17]);
        values.push(values[17]);
        let chunks = chunks_of(&values);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.is_sorted()));
        let mut found = repeated(&chunks);
        found.sort_unstable();
        assert_eq!(found, naive_repeats(&values));
        assert!(!found.is_empty());
        assert!(repeated(&chunks_of(&xorshift(100_000))).is_empty());
        assert!(repeated(&[]).is_empty());
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

    /// Two partial accumulators and a final one, of one aggregate.
    fn accumulators() -> Vec<DupAccumulator> {
        let sink = Sink::default();
        (0..3)
            .map(|_| DupAccumulator {
                sink: Arc::clone(&sink),
                hashes: Hashes::default(),
                tickets: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn one_key_on_every_row_is_merged_in_place() {
        // A top-byte bucket bigger than BUCKET_COPY: the in-place merge, not a copy.
        let mut values = vec![0xabcd_0000_0000_0001u64; BUCKET_COPY + 10];
        values.push(0xab00_0000_0000_0002);
        values.push(7);
        values.push(7);
        let chunks = chunks_of(&values);
        assert_eq!(repeated(&chunks), vec![7, 0xabcd_0000_0000_0001]);
    }
}
