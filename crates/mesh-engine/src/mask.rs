//! Masking in the plan: a column outside a reader's grant keeps its name and type and loses its
//! data (null, `***`, or a keyed hash), in a projection every query and transform goes through.

use datafusion::prelude::{Expr, cast, col, concat, lit};
use datafusion::scalar::ScalarValue;
use sha2::{Digest, Sha256};

/// How a column outside a grant is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mask {
    /// NULL of the column's type.
    #[default]
    Null,
    /// The column's type kept, every value replaced by `***` (text) or NULL (other types).
    Redacted,
    /// Text replaced by the hex HMAC-SHA256 of the value under the deployment's masking key:
    /// equal values hash alike in every product of the deployment (joins and distinct counts
    /// still work), a guess cannot be checked without the key; other types NULL.
    Hash,
    /// [`Mask::Hash`] under a key of the product's own: hashes do not join across products.
    ProductHash,
}

impl Mask {
    /// `null`, `redacted`, `hash` or `hash_product` (as contracts declare it).
    pub fn parse(text: &str) -> Option<Mask> {
        match text.trim().to_ascii_lowercase().as_str() {
            "null" => Some(Mask::Null),
            "redacted" | "redact" => Some(Mask::Redacted),
            "hash" | "sha256" | "hmac" => Some(Mask::Hash),
            "hash_product" | "hash-product" => Some(Mask::ProductHash),
            _ => None,
        }
    }

    /// Whether hiding a column this way needs a key.
    pub fn is_keyed(self) -> bool {
        matches!(self, Mask::Hash | Mask::ProductHash)
    }
}

/// A masking key: 32 secret bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaskKey(pub [u8; 32]);

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

impl MaskKey {
    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Option<MaskKey> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(MaskKey(key))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The key of one product, derived from the deployment's: HMAC(key, "mesh product " + id).
    pub fn for_product(&self, product: &str) -> MaskKey {
        MaskKey(hmac_sha256(
            &self.0,
            format!("mesh product {product}").as_bytes(),
        ))
    }
}

/// The keys a port's hashes use: the deployment's, and the product's own (derived from it).
/// A port whose masks need a key it is not given is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskKeys {
    pub deployment: Option<MaskKey>,
    pub product: Option<MaskKey>,
}

impl MaskKeys {
    /// The keys of `product`'s ports under the deployment key.
    pub fn of(deployment: MaskKey, product: &str) -> MaskKeys {
        MaskKeys {
            deployment: Some(deployment),
            product: Some(deployment.for_product(product)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const BLOCK: usize = 64;

/// The key XOR-ed with HMAC's inner and outer pads (RFC 2104), for a key of at most a block.
fn pads(key: &[u8; 32]) -> ([u8; BLOCK], [u8; BLOCK]) {
    let (mut inner, mut outer) = ([0x36u8; BLOCK], [0x5cu8; BLOCK]);
    for (i, k) in key.iter().enumerate() {
        inner[i] ^= k;
        outer[i] ^= k;
    }
    (inner, outer)
}

/// HMAC-SHA256 (RFC 2104) with a 32-byte key.
pub fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let (inner, outer) = pads(key);
    let mut h = Sha256::new();
    h.update(inner);
    h.update(message);
    let inner_digest = h.finalize();
    let mut h = Sha256::new();
    h.update(outer);
    h.update(inner_digest);
    h.finalize().into()
}

/// The hex HMAC-SHA256 of a text column under `key`, as a plan expression of DataFusion's own
/// functions (so a distributed plan needs nothing registered on its executors, and no function
/// a reader may call holds the key): `sha256(opad ‖ sha256(ipad ‖ value))`, the pads spliced in
/// as bytes through hex.
pub fn hmac_expr(key: &MaskKey, value: Expr) -> Expr {
    use datafusion::functions::crypto::expr_fn::sha256;
    use datafusion::functions::encoding::expr_fn::{decode, encode};
    let (inner, outer) = pads(&key.0);
    let bytes_of =
        |pad: &[u8; BLOCK], rest: Expr| decode(concat(vec![lit(hex(pad)), rest]), lit("hex"));
    let text = cast(value, datafusion::arrow::datatypes::DataType::Utf8);
    let inner_digest = sha256(bytes_of(&inner, encode(text, lit("hex"))));
    encode(
        sha256(bytes_of(&outer, encode(inner_digest, lit("hex")))),
        lit("hex"),
    )
}

/// `df` with every column outside `columns` (`None`: all are shown) masked as `mask_of` says:
/// same name, same type, no data.
pub fn masked(
    df: datafusion::dataframe::DataFrame,
    columns: Option<&[String]>,
    mask_of: &dyn Fn(&str) -> Mask,
    keys: &MaskKeys,
) -> datafusion::error::Result<datafusion::dataframe::DataFrame> {
    let Some(columns) = columns else {
        return Ok(df);
    };
    let exprs: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = col(datafusion::common::Column::from_name(f.name()));
            if columns.iter().any(|c| c == f.name()) {
                return Ok(column);
            }
            let text = matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Utf8
                    | datafusion::arrow::datatypes::DataType::LargeUtf8
                    | datafusion::arrow::datatypes::DataType::Utf8View
            );
            let masked = match mask_of(f.name()) {
                Mask::Redacted if text => lit("***"),
                mask @ (Mask::Hash | Mask::ProductHash) if text => {
                    let key = if mask == Mask::Hash {
                        keys.deployment
                    } else {
                        keys.product
                    };
                    // Never a hash without a key: that is the reversible one.
                    let key = key.ok_or_else(|| {
                        datafusion::error::DataFusionError::Plan(format!(
                            "column `{}` is masked by a keyed hash and no masking key was given",
                            f.name()
                        ))
                    })?;
                    hmac_expr(&key, column)
                }
                _ => lit(ScalarValue::Null),
            };
            Ok(cast(masked, f.data_type().clone()).alias(f.name()))
        })
        .collect::<datafusion::error::Result<_>>()?;
    df.select(exprs)
}
