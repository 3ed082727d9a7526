//! Bounded fuzz campaigns on the parsers that take user input (no nightly toolchain, so no
//! cargo-fuzz): inputs are the seeds in the repository's `fuzz/seeds/<kind>/` mutated — bytes
//! deleted, inserted, replaced, spans duplicated, spliced from another seed, nested — plus
//! random bytes and tokens of the input's language. Every input must be handled: a panic (or a
//! stack overflow, which aborts the test process) is a failure, and the input is written to
//! `target/fuzz-failures/` to replay.
//!
//! Deterministic for one seed of the generator: `MESH_FUZZ_SEED` picks another,
//! `MESH_FUZZ_CASES` sets how many inputs (a long campaign: `MESH_FUZZ_CASES=200000`).

use std::path::{Path, PathBuf};

/// The repository's seed inputs of `kind` (`sql`, `rego`, `openlineage`, ...), by file name.
pub fn seeds(kind: &str) -> Vec<(String, String)> {
    let dir = root().join("fuzz/seeds").join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz seeds {}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), text))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fuzz seeds in {}", dir.display());
    out
}

fn root() -> PathBuf {
    // CARGO_MANIFEST_DIR of the crate under test: crates/<name>.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    Path::new(&manifest)
        .ancestors()
        .find(|p| p.join("fuzz/seeds").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(manifest))
}

/// How many inputs a campaign tries: `MESH_FUZZ_CASES`, else `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("MESH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, fast, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `text` with 1–8 random edits: deletions, insertions (of `tokens` or bytes), replacements,
/// duplicated spans, a splice from `other`, or the whole text nested in itself.
pub fn mutate(rng: &mut Rng, text: &str, other: &str, tokens: &[&str]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(8) {
            0 if !bytes.is_empty() => {
                let from = at.min(bytes.len() - 1);
                let to = (from + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(from..to);
            }
            1 => {
                let token = rng.pick(tokens).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            2 => bytes.insert(at, rng.next_u64() as u8),
            3 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = rng.next_u64() as u8;
            }
            4 if !bytes.is_empty() => {
                let from = rng.below(bytes.len());
                let to = (from + 1 + rng.below(64)).min(bytes.len());
                let span = bytes[from..to].to_vec();
                for _ in 0..1 + rng.below(4) {
                    bytes.splice(at..at, span.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let o = other.as_bytes();
                let from = rng.below(o.len());
                let to = (from + 1 + rng.below(200)).min(o.len());
                bytes.splice(at..at, o[from..to].iter().copied());
            }
            6 if bytes.len() < 4_000 => {
                let copy = bytes.clone();
                bytes.splice(at..at, copy);
            }
            _ => {
                let token = rng.pick(tokens).as_bytes().to_vec();
                for _ in 0..1 + rng.below(50) {
                    bytes.splice(at..at, token.iter().copied());
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `target` on `cases` inputs made from the seeds of `kind` and `tokens`: a quarter random
/// bytes or token soup, the rest mutated seeds. A panic fails the campaign with the input,
/// which is also written to `target/fuzz-failures/`.
pub fn campaign(kind: &str, cases: usize, tokens: &[&str], mut target: impl FnMut(&str)) {
    let seeds = seeds(kind);
    let start = std::env::var("MESH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d65_7368_u64);
    let mut rng = Rng::new(start);
    // Every seed as it is, first.
    for (_, text) in &seeds {
        run_one(kind, text, &mut target);
    }
    for _ in 0..cases {
        let input = match rng.below(8) {
            0 => {
                let n = rng.below(300);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => (0..rng.below(80)).map(|_| *rng.pick(tokens)).collect(),
            _ => {
                let (_, text) = rng.pick(&seeds).clone();
                let (_, other) = rng.pick(&seeds).clone();
                mutate(&mut rng, &text, &other, tokens)
            }
        };
        run_one(kind, &input, &mut target);
    }
}

fn run_one(kind: &str, input: &str, target: &mut impl FnMut(&str)) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
    if let Err(panic) = outcome {
        let dir = root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{kind}-{:016x}.txt", fnv(input)));
        let _ = std::fs::write(&file, input);
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        panic!(
            "{kind} input (saved as {}) panicked: {what}\n---\n{}",
            file.display(),
            input.chars().take(2_000).collect::<String>()
        );
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
