//! Product search, kept in step with the catalog: the index ([`index`]) is derived from the
//! event log before every query, so whatever has been committed — by this process or any other
//! on the same database — is what is searched; and recommendations from search and lineage.

pub(crate) mod index;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, latest_page, next_subjects, parse_json};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::lineage::graph as lineage;
use crate::store::{StoreError, Tx};

use index::SearchIndex;
pub use index::{SearchHit, SearchQuery, SearchResults};

/// Why a search or a recommendation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A search beyond the limits: too long, or too many words.
    #[error("{0}")]
    TooBig(String),
}

/// The longest search, in characters.
pub const MAX_SEARCH_CHARS: usize = 1_000;
/// The most distinct words a search looks for.
pub const MAX_SEARCH_WORDS: usize = 32;

impl ToProblem for SearchError {
    fn code(&self) -> ErrorCode {
        match self {
            SearchError::TooBig(_) => ErrorCode::BadRequest,
            SearchError::Denied(_) => ErrorCode::Forbidden,
            SearchError::NotFound(_) => ErrorCode::NotFound,
            SearchError::Store(e) => e.code(),
        }
    }
}

/// A product worth a look, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub product: String,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// Event kinds that change what search shows for their subject.
const SEARCH_EVENTS: [&str; 3] = ["product.published", "version.deprecated", "version.retired"];

impl Catalog {
    /// Searches products. The index first catches up with the event log, so whatever has been
    /// committed — by this process or any other on the same database — is what is searched.
    pub async fn search(
        &self,
        who: &Principal,
        query: &SearchQuery,
    ) -> Result<SearchResults, SearchError> {
        Self::allow(who, Action::Read)?;
        let chars = query.q.chars().count();
        if chars > MAX_SEARCH_CHARS {
            return Err(SearchError::TooBig(format!(
                "the search is {chars} characters; at most {MAX_SEARCH_CHARS} are searched"
            )));
        }
        let words = index::distinct_words(&query.q).len();
        if words > MAX_SEARCH_WORDS {
            return Err(SearchError::TooBig(format!(
                "the search has {words} different words; at most {MAX_SEARCH_WORDS} are searched"
            )));
        }
        self.sync_search().await?;
        // Scoring is CPU work: off the threads that serve requests.
        let search = std::sync::Arc::clone(&self.search);
        let query = query.clone();
        tokio::task::spawn_blocking(move || {
            let index = search.index.read().unwrap_or_else(|e| e.into_inner());
            index.search(&query)
        })
        .await
        .map_err(|e| SearchError::Store(StoreError::Corrupt(format!("the search failed: {e}"))))
    }

    /// How many products the search index holds (after catching up).
    pub async fn indexed_products(&self) -> Result<usize, SearchError> {
        self.sync_search().await?;
        Ok(self
            .search
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len())
    }

    /// Brings the search index up to date: a full build the first time, then the products named
    /// by new events, each re-read from the database.
    pub async fn sync_search(&self) -> Result<(), StoreError> {
        let mut applied = self.search.applied.lock().await;
        let mut tx = self.store.read().await?;
        let mut seq = match *applied {
            Some(seq) => seq,
            None => {
                let upto = tx.max_event_seq().await?;
                let index = self.build_index(tx.as_mut()).await?;
                *self.search.index.write().unwrap_or_else(|e| e.into_inner()) = index;
                upto
            }
        };
        while let Some((last, touched)) = next_subjects(tx.as_mut(), seq, |e| {
            SEARCH_EVENTS
                .contains(&e.kind.as_str())
                .then(|| e.subject.clone())
        })
        .await?
        {
            let mut docs = Vec::new();
            for id in touched {
                let doc = self.search_document(tx.as_mut(), &id).await?;
                docs.push((id, doc));
            }
            let mut index = self.search.index.write().unwrap_or_else(|e| e.into_inner());
            for (id, doc) in docs {
                match doc {
                    Some(doc) => index.upsert(doc),
                    None => index.remove(&id),
                }
            }
            seq = last;
        }
        *applied = Some(seq);
        Ok(())
    }

    /// Every product's latest version, a page at a time.
    async fn build_index(&self, tx: &mut dyn Tx) -> Result<SearchIndex, StoreError> {
        let mut index = SearchIndex::default();
        let mut after: Option<String> = None;
        while let Some((upto, page)) = latest_page(tx, after.as_deref(), 1000).await? {
            for (product, version) in page {
                index.upsert(index::document(
                    &product,
                    Some(&version.descriptor),
                    &version.contracts,
                ));
            }
            after = Some(upto);
        }
        Ok(index)
    }

    async fn search_document(
        &self,
        tx: &mut dyn Tx,
        id: &str,
    ) -> Result<Option<index::SearchDoc>, StoreError> {
        let Some(product) = tx.product(id).await? else {
            return Ok(None);
        };
        let Some(latest) = product.latest.clone() else {
            return Ok(None);
        };
        let descriptor = match tx.version(id, &latest).await? {
            Some(v) => Some(parse_json(&v.descriptor, "descriptor")?),
            None => None,
        };
        let contracts = tx
            .ports(id, &latest)
            .await?
            .into_iter()
            .map(|p| Ok((p.port, parse_json(&p.contract, "contract")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(index::document(
            &product,
            descriptor.as_ref(),
            &contracts,
        )))
    }

    /// Products to look at next from `product`: those its consumers also read, then those of the
    /// same domain or with shared tags and columns. Best first, at most `limit`.
    pub async fn recommendations(
        &self,
        who: &Principal,
        product: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>, SearchError> {
        Self::allow(who, Action::Read)?;
        if self.store.read().await?.product(product).await?.is_none() {
            return Err(Missing::Product {
                product: product.to_owned(),
            }
            .into());
        }
        self.sync_search().await?;
        self.sync_lineage().await?;
        let mut scores: HashMap<String, (f32, Vec<String>)> = HashMap::new();
        {
            // "Consumers of this also use": jobs reading this product's datasets, and what else
            // they read.
            let graph = self.lineage.graph.read().unwrap_or_else(|e| e.into_inner());
            let me = lineage::job(lineage::MESH_NAMESPACE, product);
            let (_, outputs) = graph.edges_of(&me);
            for output in outputs {
                let (_, readers) = graph.edges_of(&output.destination);
                for reader in readers.iter().filter(|e| e.destination.starts_with("job:")) {
                    let consumer = reader.destination.trim_start_matches("job:mesh:");
                    let (inputs, _) = graph.edges_of(&reader.destination);
                    for input in inputs {
                        let (producers, _) = graph.edges_of(&input.origin);
                        for producer in producers {
                            let Some(other) = producer.origin.strip_prefix("job:mesh:") else {
                                continue;
                            };
                            if other == product {
                                continue;
                            }
                            let slot = scores.entry(other.to_owned()).or_default();
                            slot.0 += 2.0;
                            slot.1.push(format!("also read by {consumer}"));
                        }
                    }
                }
            }
        }
        {
            // ...and the people who query it: what else they read through the query port.
            let mut tx = self.store.read().await?;
            let readers = tx.usage(Some(product), None, 200).await?;
            let mut seen = std::collections::HashSet::new();
            for reader in readers.iter().filter(|r| seen.insert(r.reader.clone())) {
                for other in tx.usage(None, Some(&reader.reader), 200).await? {
                    if other.product == product {
                        continue;
                    }
                    let slot = scores.entry(other.product.clone()).or_default();
                    slot.0 += 1.5;
                    slot.1.push(format!("also queried by {}", reader.reader));
                }
            }
        }
        {
            let index = self.search.index.read().unwrap_or_else(|e| e.into_inner());
            for (id, score, why) in index.related(product) {
                let slot = scores.entry(id).or_default();
                slot.0 += score;
                slot.1.extend(why);
            }
        }
        let mut out: Vec<Recommendation> = scores
            .into_iter()
            .map(|(product, (score, mut reasons))| {
                reasons.dedup();
                Recommendation {
                    product,
                    score,
                    reasons,
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.product.cmp(&b.product)));
        out.truncate(limit.clamp(1, 100));
        Ok(out)
    }
}
