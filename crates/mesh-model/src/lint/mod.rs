//! `mesh lint`: every check on a set of contract and product files, as data.
//!
//! Three layers, each reporting every finding with its position:
//! 1. structure — the typed parse ([`crate::document`]), which agrees with the official ODCS 3.1.0
//!    and ODPS 1.0.0 JSON schemas;
//! 2. semantics the schemas cannot express ([`semantic`]): unique names and ids, resolvable
//!    relationships, ordered bounds;
//! 3. platform readiness ([`readiness`]): what `mesh publish` needs (owner, domain, output ports
//!    with contracts that resolve, semver versions). Warnings by default, errors with `strict`.
//!
//! The caller does I/O (finding and reading files); this module only sees text, so it is pure and
//! the same in the CLI, the server and tests.

mod readiness;
mod semantic;

use crate::diag::{Diagnostic, Severity};
use crate::document::{AnyParsed, DocKind, parse_document, unknown_kind};
use crate::odcs::Contract;
use crate::odps::DataProduct;
use crate::source::Node;

/// One file to lint.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user should read it in messages.
    pub path: String,
    pub text: String,
    /// Named by the user. A discovered `*.yaml` whose kind we do not know is skipped silently;
    /// an explicit one is an error.
    pub explicit: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LintOptions {
    /// Platform-readiness findings are errors instead of warnings.
    pub strict: bool,
}

/// The findings for one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub kind: Option<DocKind>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
}

/// The findings for all files, in the order given.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    pub files: Vec<FileReport>,
}

impl LintReport {
    pub fn errors(&self) -> usize {
        self.files.iter().map(FileReport::errors).sum()
    }

    pub fn warnings(&self) -> usize {
        self.files.iter().map(FileReport::warnings).sum()
    }
}

/// Whether unparseable text still says `kind: DataContract` or `kind: DataProduct` (YAML or JSON).
fn claims_our_kind(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start().trim_start_matches(['"', '\'']);
        line.starts_with("kind") && (line.contains("DataContract") || line.contains("DataProduct"))
    })
}

/// A contract as seen by cross-file checks.
pub(crate) struct LintedContract<'a> {
    pub path: &'a str,
    pub model: &'a Contract,
}

/// Lints `files` together: contract ids referenced by products resolve within the set.
pub fn lint(files: &[SourceFile], options: LintOptions) -> LintReport {
    struct Item<'a> {
        file: &'a SourceFile,
        kind: Option<DocKind>,
        root: Option<Node>,
        contract: Option<Contract>,
        product: Option<DataProduct>,
        diagnostics: Vec<Diagnostic>,
    }

    let mut items = Vec::new();
    for file in files {
        let item = match parse_document(&file.path, &file.text) {
            AnyParsed::Contract(p) => {
                let mut diagnostics = p.diagnostics;
                if let Some(root) = &p.root {
                    diagnostics.extend(semantic::contract(root));
                }
                Item {
                    file,
                    kind: Some(DocKind::Contract),
                    root: p.root,
                    contract: p.model,
                    product: None,
                    diagnostics,
                }
            }
            AnyParsed::Product(p) => {
                let mut diagnostics = p.diagnostics;
                if let Some(root) = &p.root {
                    diagnostics.extend(semantic::product(root));
                }
                Item {
                    file,
                    kind: Some(DocKind::Product),
                    root: p.root,
                    contract: None,
                    product: p.model,
                    diagnostics,
                }
            }
            AnyParsed::Unknown {
                root,
                mut diagnostics,
            } => {
                // A discovered YAML file that is not ours (a CI workflow, a Kubernetes manifest, a
                // CloudFormation template) is none of our business, even if it is broken; one the
                // user named is, and so is a broken one whose text claims to be ours.
                if !file.explicit && (root.is_some() || !claims_our_kind(&file.text)) {
                    continue;
                }
                if root.is_some() {
                    diagnostics.push(unknown_kind(root.as_ref()));
                }
                Item {
                    file,
                    kind: None,
                    root,
                    contract: None,
                    product: None,
                    diagnostics,
                }
            }
        };
        items.push(item);
    }

    let contracts: Vec<LintedContract<'_>> = items
        .iter()
        .filter_map(|i| {
            Some(LintedContract {
                path: &i.file.path,
                model: i.contract.as_ref()?,
            })
        })
        .collect();
    let mut extra: Vec<Vec<Diagnostic>> = Vec::with_capacity(items.len());
    for item in &items {
        let mut found = Vec::new();
        if let (Some(root), Some(contract)) = (&item.root, &item.contract) {
            found.extend(readiness::contract(contract, root));
        }
        if let (Some(root), Some(product)) = (&item.root, &item.product) {
            found.extend(readiness::product(product, root, &contracts));
        }
        if options.strict {
            for d in &mut found {
                d.severity = Severity::Error;
            }
        }
        extra.push(found);
    }

    let files = items
        .into_iter()
        .zip(extra)
        .map(|(item, more)| {
            let mut diagnostics = item.diagnostics;
            diagnostics.extend(more);
            diagnostics.sort_by_key(|d| (d.position(), d.severity));
            FileReport {
                path: item.file.path.clone(),
                kind: item.kind,
                diagnostics,
            }
        })
        .collect();
    LintReport { files }
}
