//! `mesh new product NAME --domain D --type T --owner TEAM [--input D.P[.PORT]]...`: a product
//! folder a domain team can lint, test, publish and run as generated — descriptor, one output
//! port's contract with quality rules and an SLA, `transform.sql`, sample data for a source
//! product, a local policy with its test and a README — and the workspace's CI workflow at its
//! root (see `cmd::ci`). It never overwrites a product file unless `--force`.
//!
//! A derived (or aggregate, or consumer-aligned) product's output is scaffolded from its first
//! input's contract, found in the workspace (`<domain>/<product>/contracts/<port>.odcs.yaml`) or
//! in the catalog, so that the generated `transform.sql` and contract agree with the data.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_model::names::{Sensitivity, TeamName, is_snake as snake};
use mesh_model::source::Node;

use crate::output::{self, LOCATION, OK, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// A data product folder: `<domain>/<name>/` under the workspace.
    Product(ProductArgs),
}

/// The kinds of data product (ODPS `productType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// Reads external data (files, object storage).
    Source,
    /// Aggregates another product's output.
    Aggregate,
    /// Shaped for one group of consumers.
    ConsumerAligned,
    /// Derived from other products.
    Derived,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Aggregate => "aggregate",
            Kind::ConsumerAligned => "consumer-aligned",
            Kind::Derived => "derived",
        }
    }
}

#[derive(Debug, clap::Args)]
struct ProductArgs {
    /// The product's name, snake_case (its id is `<domain>.<name>`).
    name: String,
    /// The owning domain, snake_case.
    #[arg(long)]
    domain: String,
    /// What kind of product.
    #[arg(long = "type", value_enum, default_value_t = Kind::Source)]
    kind: Kind,
    /// The owning team.
    #[arg(long)]
    owner: String,
    /// The owner's e-mail (default `<owner>@example.com`: change it).
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// An upstream output port this product reads: `domain.product` (its port of the same name)
    /// or `domain.product.port`. Repeat for several.
    #[arg(long = "input", value_name = "DOMAIN.PRODUCT[.PORT]")]
    inputs: Vec<String>,
    /// A contract to start a source product from (such as one `mesh import` wrote): its columns,
    /// keys and descriptions become the output's, and its database server (PostgreSQL, MySQL,
    /// SQLite) the product's source table.
    #[arg(long, value_name = "FILE", conflicts_with = "inputs")]
    from_contract: Option<PathBuf>,
    /// The workspace root the product folder goes under (default: the folder of mesh.toml, or
    /// the current folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    match &args.what {
        What::Product(p) => product(p),
    }
}

/// An upstream port: `domain.product[.port]`.
#[derive(Debug, Clone)]
struct Input {
    domain: String,
    product: String,
    port: String,
}

impl Input {
    fn parse(text: &str) -> anyhow::Result<Input> {
        let parts: Vec<&str> = text.split('.').collect();
        let ok = matches!(parts.len(), 2 | 3) && parts.iter().all(|p| snake(p));
        if !ok {
            bail!("--input `{text}` is not DOMAIN.PRODUCT or DOMAIN.PRODUCT.PORT in snake_case");
        }
        Ok(Input {
            domain: parts[0].to_owned(),
            product: parts[1].to_owned(),
            port: parts.get(2).unwrap_or(&parts[1]).to_string(),
        })
    }

    fn contract_id(&self) -> String {
        format!("{}.{}.{}", self.domain, self.product, self.port)
    }
}

/// One column of the output contract.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    logical: String,
    required: bool,
    key: bool,
    /// Its place in a key of several columns (`primaryKeyPosition`).
    key_position: Option<i64>,
    /// Unique on its own (not being the key).
    unique: bool,
    classification: Option<String>,
    pii: bool,
    encrypted: Option<String>,
    description: String,
}

fn product(args: &ProductArgs) -> anyhow::Result<Outcome> {
    for (what, value) in [("name", &args.name), ("--domain", &args.domain)] {
        if !snake(value) {
            bail!("{what} `{value}` is not snake_case (lower-case letters, digits and `_`)");
        }
    }
    if TeamName::parse(&args.owner).is_err() {
        bail!(
            "--owner `{}` is not a team name (lower-case letters, digits, `-`, `_`)",
            args.owner
        );
    }
    let email = args
        .email
        .clone()
        .unwrap_or_else(|| format!("{}@example.com", args.owner));
    if !email.contains('@') || email.contains(char::is_whitespace) {
        bail!("--email `{email}` is not an e-mail address");
    }
    let inputs: Vec<Input> = args
        .inputs
        .iter()
        .map(|i| Input::parse(i))
        .collect::<anyhow::Result<_>>()?;
    match (args.kind, inputs.is_empty()) {
        (Kind::Source, false) => {
            bail!(
                "a source product reads external data, not other products: drop --input, or choose --type derived"
            )
        }
        (kind, true) if kind != Kind::Source => {
            bail!(
                "a {} product reads other products: name at least one with --input DOMAIN.PRODUCT",
                kind.as_str()
            )
        }
        _ => {}
    }
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => crate::workspace::root(),
    };
    let folder = root.join(&args.domain).join(&args.name);

    // Every input's contract: the first one's columns start the output, each one's version
    // pins its input port to that major version.
    let mut upstream = Vec::new();
    if !inputs.is_empty() {
        let runtime = crate::runtime()?;
        for input in &inputs {
            upstream.push(runtime.block_on(upstream_contract(&root, input, &args.catalog))?);
        }
    }
    let (columns, database) = match (&args.from_contract, upstream.first()) {
        (Some(file), _) => {
            if args.kind != Kind::Source {
                bail!("--from-contract starts a source product: drop --type, or use --type source");
            }
            from_contract(file)?
        }
        (None, None) => (source_columns(&args.name), None),
        (None, Some((first, _))) if args.kind == Kind::Aggregate => {
            (aggregate_columns(first), None)
        }
        (None, Some((first, _))) => (first.clone(), None),
    };
    let versions: Vec<String> = upstream.into_iter().map(|(_, v)| v).collect();
    let files = render(
        args,
        &inputs,
        &versions,
        &columns,
        &email,
        database.as_ref(),
    );

    // Nothing is written when any file exists (unless --force): all or nothing.
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| folder.join(path).exists())
        .map(|(path, _)| folder.join(path).display().to_string())
        .collect();
    if !existing.is_empty() && !args.force {
        output::error(&format!(
            "{} already; nothing was written (--force overwrites):\n  {}",
            if existing.len() == 1 {
                "a file exists".to_owned()
            } else {
                format!("{} files exist", existing.len())
            },
            existing.join("\n  ")
        ));
        return Ok(Outcome::Error);
    }
    for (path, text) in &files {
        let path = folder.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The workspace's one CI workflow: written with the first product, kept up to date after.
    let workflow = crate::cmd::ci::write_workflow(&root, false)?;
    if args.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "product": format!("{}.{}", args.domain, args.name),
            "folder": folder.display().to_string(),
            "files": files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "workflow": format!("{workflow:?}").to_lowercase(),
        });
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let mut out = output::stdout();
    writeln!(
        out,
        "{} {} product {} in {}",
        paint(OK, "Created"),
        args.kind.as_str(),
        paint(LOCATION, &format!("{}.{}", args.domain, args.name)),
        folder.display()
    )?;
    for (path, _) in &files {
        writeln!(out, "  {path}")?;
    }
    let workflow_path = root.join(crate::cmd::ci::WORKFLOW_PATH);
    match workflow {
        crate::cmd::ci::Written::Created => {
            writeln!(out, "and the workspace's CI: {}", workflow_path.display())?
        }
        crate::cmd::ci::Written::Updated => writeln!(
            out,
            "and brought the workspace's CI up to date: {}",
            workflow_path.display()
        )?,
        crate::cmd::ci::Written::Current => {}
        crate::cmd::ci::Written::Kept => writeln!(
            out,
            "{} is your own (no generated marker): left as it is; `mesh ci workflow --force` replaces it",
            workflow_path.display()
        )?,
    }
    let shown = folder.display();
    if let Some(db) = &database {
        writeln!(
            out,
            "it reads table {} of {}: a platform admin registers that database once with\n  mesh location add NAME {} --domain {}",
            db.table, db.url, db.url, args.domain
        )?;
    }
    writeln!(
        out,
        "next: mesh lint {shown} && mesh publish {shown} && mesh run {shown}"
    )?;
    out.flush()?;
    Ok(Outcome::Ok)
}

/// A source product's columns: a key, a label, an amount, and when the row last changed.
fn source_columns(name: &str) -> Vec<Column> {
    let column =
        |name: String, logical: &str, required: bool, key: bool, description: &str| Column {
            name,
            logical: logical.to_owned(),
            required,
            key,
            key_position: None,
            unique: false,
            classification: None,
            pii: false,
            encrypted: None,
            description: description.to_owned(),
        };
    vec![
        column(
            format!("{name}_id"),
            "string",
            true,
            true,
            "The row's identifier.",
        ),
        column(
            "label".into(),
            "string",
            true,
            false,
            "A name people use for the row.",
        ),
        column(
            "amount".into(),
            "number",
            false,
            false,
            "An amount, never negative.",
        ),
        column(
            "updated_at".into(),
            "timestamp",
            true,
            false,
            "When the row last changed.",
        ),
    ]
}

/// The upstream port's columns (its first table) and contract version, from the workspace or
/// the catalog.
async fn upstream_contract(
    root: &Path,
    input: &Input,
    catalog: &CatalogArgs,
) -> anyhow::Result<(Vec<Column>, String)> {
    let file = root
        .join(&input.domain)
        .join(&input.product)
        .join("contracts")
        .join(format!("{}.odcs.yaml", input.port));
    let contract: serde_json::Value = if file.is_file() {
        let text = crate::files::read_text(&file)?;
        crate::cmd::policy::parse(&text, &file.display().to_string())?.to_json()
    } else {
        let id = format!("{}.{}", input.domain, input.product);
        let found = async {
            let client = catalog.connect().await?;
            let version = client
                .version(&id, "latest")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            version
                .ports
                .into_iter()
                .find(|p| p.port == input.port)
                .map(|p| p.contract)
                .with_context(|| format!("{id} has no output port `{}`", input.port))
        }
        .await;
        found.with_context(|| {
            format!(
                "cannot find the contract of input {}: not at {} and not in the catalog",
                input.contract_id(),
                file.display()
            )
        })?
    };
    let node = Node::from_json(&contract);
    let columns: Vec<Column> = contract_columns(&node, &|name| {
        format!("`{name}` of {}.", input.contract_id())
    })
    .into_iter()
    // What is unique upstream need not stay unique after a transform.
    .map(|c| Column {
        unique: false,
        key_position: None,
        ..c
    })
    .collect();
    if columns.is_empty() {
        bail!(
            "the contract of input {} has no columns to start from",
            input.contract_id()
        );
    }
    let version = node
        .get("version")
        .and_then(Node::as_str)
        .unwrap_or("1.0.0")
        .to_owned();
    Ok((columns, version))
}

/// A database table a source product reads: where (no credentials in it) and which table.
#[derive(Debug, Clone)]
struct DbSpec {
    url: String,
    table: String,
}

/// The columns of the contract in `file` and, when its first server is a database, that
/// database's table as the product's source.
fn from_contract(file: &Path) -> anyhow::Result<(Vec<Column>, Option<DbSpec>)> {
    let text = crate::files::read_text(file)?;
    let shown = file.display().to_string();
    let node = Node::from_json(&crate::cmd::policy::parse(&text, &shown)?.to_json());
    let columns = contract_columns(&node, &|name| format!("`{name}`, as {shown} describes it."));
    if columns.is_empty() {
        bail!("{shown}: its first schema object has no properties to start from");
    }
    let table = node
        .get("schema")
        .and_then(Node::as_seq)
        .and_then(|s| s.first())
        .and_then(|t| t.get("physicalName").or_else(|| t.get("name")))
        .and_then(Node::as_str)
        .map(str::to_owned);
    let server = node
        .get("servers")
        .and_then(Node::as_seq)
        .and_then(|s| s.first().cloned());
    let (Some(server), Some(table)) = (server, table) else {
        return Ok((columns, None));
    };
    let field = |k: &str| server.get(k).and_then(Node::as_str).map(str::to_owned);
    let port = server.get("port").and_then(|v| match &v.value {
        mesh_model::source::Value::Int(i) => Some(i.to_string()),
        mesh_model::source::Value::String(s) => Some(s.clone()),
        _ => None,
    });
    let host = field("host").unwrap_or_else(|| "localhost".into());
    let spec = match field("type")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("postgres" | "postgresql") => Some(DbSpec {
            url: format!(
                "postgres://{host}:{}/{}",
                port.unwrap_or_else(|| "5432".into()),
                field("database").unwrap_or_else(|| "postgres".into())
            ),
            table: match field("schema") {
                Some(schema) => format!("{schema}.{table}"),
                None => table,
            },
        }),
        Some("mysql") => Some(DbSpec {
            url: format!(
                "mysql://{host}:{}/{}",
                port.unwrap_or_else(|| "3306".into()),
                field("database").unwrap_or_default()
            ),
            table,
        }),
        Some("custom") if field("format").as_deref() == Some("sqlite") => {
            let path = field("path").unwrap_or_default();
            let dir = file.parent().unwrap_or(Path::new("."));
            let at = std::fs::canonicalize(dir.join(&path))
                .with_context(|| format!("{shown}: its SQLite server's path {path}"))?;
            Some(DbSpec {
                url: format!("sqlite://{}", at.display()),
                table,
            })
        }
        _ => None,
    };
    Ok((columns, spec))
}

/// A name as a DataFusion identifier: bare when it reads back the same, else double-quoted.
fn sql_name(name: &str) -> String {
    if snake(name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The columns of a contract's first table, each described by its own description or else by
/// `described(name)`.
fn contract_columns(node: &Node, described: &dyn Fn(&str) -> String) -> Vec<Column> {
    let props = node
        .get("schema")
        .and_then(Node::as_seq)
        .and_then(|s| s.first())
        .and_then(|t| t.get("properties"))
        .and_then(Node::as_seq)
        .unwrap_or_default();
    props
        .iter()
        .filter_map(|p| {
            let name = p.get("name").and_then(Node::as_str)?.to_owned();
            let text = |k: &str| p.get(k).and_then(Node::as_str).map(str::to_owned);
            let flag = |k: &str| p.get(k).and_then(Node::as_bool).unwrap_or(false);
            let position = p.get("primaryKeyPosition").and_then(|v| match &v.value {
                mesh_model::source::Value::Int(i) => Some(*i),
                _ => None,
            });
            Some(Column {
                logical: text("logicalType").unwrap_or_else(|| "string".into()),
                required: flag("required"),
                key: flag("primaryKey"),
                key_position: position,
                unique: flag("unique"),
                classification: text("classification"),
                pii: p
                    .get("tags")
                    .and_then(Node::as_seq)
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("pii"))),
                encrypted: text("encryptedName"),
                description: text("description").unwrap_or_else(|| described(&name)),
                name,
            })
        })
        .collect()
}

/// An aggregate: rows per value of the first non-key text column (or of the key).
fn aggregate_columns(upstream: &[Column]) -> Vec<Column> {
    let group = upstream
        .iter()
        .find(|c| !c.key && c.logical == "string" && c.classification.is_none() && !c.pii)
        .or_else(|| upstream.iter().find(|c| c.key))
        .unwrap_or(&upstream[0]);
    vec![
        Column {
            name: group.name.clone(),
            logical: "string".into(),
            required: true,
            key: true,
            key_position: None,
            unique: false,
            classification: None,
            pii: false,
            encrypted: None,
            description: format!("The {} the rows are counted by.", group.name),
        },
        Column {
            name: "row_count".into(),
            logical: "integer".into(),
            required: true,
            key: false,
            key_position: None,
            unique: false,
            classification: None,
            pii: false,
            encrypted: None,
            description: "How many upstream rows have this value.".into(),
        },
    ]
}

const RANKS: [&str; 4] = ["public", "internal", "confidential", "restricted"];

fn render(
    args: &ProductArgs,
    inputs: &[Input],
    versions: &[String],
    columns: &[Column],
    email: &str,
    database: Option<&DbSpec>,
) -> Vec<(String, String)> {
    let (domain, name, team) = (&args.domain, &args.name, &args.owner);
    let id = format!("{domain}.{name}");
    let title = name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    // The product is at least as strict as its strictest column.
    let classification = columns
        .iter()
        .filter_map(|c| c.classification.as_deref())
        .filter_map(|c| RANKS.iter().position(|r| r.eq_ignore_ascii_case(c)))
        .max()
        .map_or("internal", |i| RANKS[i.max(1)]);
    // Sensitive columns without an encrypted form are masked at the port.
    let masked: Vec<&str> = columns
        .iter()
        .filter(|c| {
            Sensitivity::of(c.classification.as_deref()).is_sensitive() && c.encrypted.is_none()
        })
        .map(|c| c.name.as_str())
        .collect();
    let timestamp = columns.iter().find(|c| c.logical == "timestamp");
    let key = columns.iter().find(|c| c.key).unwrap_or(&columns[0]);

    let mut descriptor = format!(
        "apiVersion: v1.0.0
kind: DataProduct
id: {id}
name: {title}
domain: {domain}
status: active
version: 0.1.0
description:
  purpose: {title}, owned by {team}. Say here what it is for and who should use it.
customProperties:
  - property: productType
    value: {kind}
  - property: dataClassification
    value: {classification}
  - property: retentionDays
    value: 365
",
        kind = args.kind.as_str(),
    );
    // The contract below promises data at most a day old: hourly runs keep that promise with
    // a day of retries to spare; a product that reads other products also runs when they move.
    descriptor.push_str(&format!(
        "  - property: schedule
    description: When the pipeline runs (see `mesh schedule`); the contract promises data at most 1 day old.
    value:
      cron: \"0 * * * *\"
      timezone: UTC
{}      retries: 2
",
        if inputs.is_empty() { "" } else { "      on: upstream\n" }
    ));
    match (args.kind, database) {
        (Kind::Source, Some(db)) => descriptor.push_str(&format!(
            "  - property: sources
    description: External data this product reads; each is a table in transform.sql.
    value:
      - name: raw_{name}
        path: {}
        table: {}
",
            crate::files::yaml_text(&db.url),
            crate::files::yaml_text(&db.table)
        )),
        (Kind::Source, None) => descriptor.push_str(&format!(
            "  - property: sources
    description: External data this product reads; each is a table in transform.sql.
    value:
      - name: raw_{name}
        path: data/{name}.csv
        format: csv
"
        )),
        _ => {}
    }
    descriptor.push_str(&format!(
        "team:
  name: {team}
  members:
    - username: {email}
      role: owner
"
    ));
    if !inputs.is_empty() {
        descriptor.push_str("inputPorts:\n");
        for (input, version) in inputs.iter().zip(versions) {
            descriptor.push_str(&format!(
                "  - name: {port}
    version: {version}
    contractId: {contract}
",
                port = input_name(input, inputs),
                contract = input.contract_id()
            ));
        }
    }
    descriptor.push_str(&format!(
        "outputPorts:
  - name: {name}
    description: {title}, one row per {key}.
    type: tables
    version: 0.1.0
    contractId: {id}.{name}
",
        key = key.name
    ));
    if !masked.is_empty() {
        descriptor.push_str(&format!(
            "    customProperties:
      - property: masked
        value: [{}]
",
            masked.join(", ")
        ));
    }

    let mut contract = format!(
        "apiVersion: v3.1.0
kind: DataContract
id: {id}.{name}
name: {name}
version: 0.1.0
status: active
domain: {domain}
description:
  purpose: {title}, one row per {key}.
schema:
  - name: {name}
    physicalType: table
    properties:
",
        key = key.name
    );
    let composite = columns.iter().filter(|c| c.key).count() > 1;
    for c in columns {
        contract.push_str(&format!(
            "      - name: {}\n        description: {}\n        logicalType: {}\n        required: {}\n",
            crate::files::yaml_text(&c.name),
            crate::files::yaml_text(&c.description),
            c.logical,
            c.required
        ));
        if let Some(k) = &c.classification {
            contract.push_str(&format!("        classification: {k}\n"));
        }
        if c.pii {
            contract.push_str("        tags: [pii]\n");
        }
        if let Some(e) = &c.encrypted {
            contract.push_str(&format!("        encryptedName: {e}\n"));
        }
        if c.key && composite {
            // A key of several columns: unique together (a model-level check), not each.
            contract.push_str("        primaryKey: true\n");
            if let Some(position) = c.key_position {
                contract.push_str(&format!("        primaryKeyPosition: {position}\n"));
            }
        } else if c.unique && !c.key {
            contract.push_str("        unique: true\n");
        } else if c.key {
            contract.push_str(
                "        primaryKey: true
        unique: true
        quality:
          - metric: duplicateValues
            mustBe: 0
",
            );
        }
        if c.logical == "number" || c.name == "row_count" {
            let bound = if c.name == "row_count" { 1 } else { 0 };
            contract.push_str(&format!(
                "        logicalTypeOptions:\n          minimum: {bound}\n"
            ));
        }
    }
    contract.push_str(
        "    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
",
    );
    if composite {
        let mut keys: Vec<&Column> = columns.iter().filter(|c| c.key).collect();
        keys.sort_by_key(|c| c.key_position.unwrap_or(i64::MAX));
        let listed: Vec<String> = keys
            .iter()
            .map(|c| crate::files::yaml_text(&c.name))
            .collect();
        contract.push_str(&format!(
            "      - metric: duplicateValues
        arguments:
          properties: [{}]
        mustBe: 0
",
            listed.join(", ")
        ));
    }
    contract.push_str(
        "slaProperties:
  - property: latency
    value: 1
    unit: d
",
    );
    if let Some(ts) = timestamp {
        contract.push_str(&format!("    element: {name}.{}\n", ts.name));
    }
    contract.push_str(
        "  - property: availability
    value: 99.5
    unit: percent
  - property: retention
    value: 1
    unit: y
",
    );
    // Retention is measured on the same timestamp: the oldest row must be younger than a year.
    if let Some(ts) = timestamp {
        contract.push_str(&format!("    element: {name}.{}\n", ts.name));
    }

    let list = columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",\n       ");
    let transform = match args.kind {
        Kind::Source if database.is_some() => {
            // A database's columns arrive typed: no casts.
            let list = columns
                .iter()
                .map(|c| sql_name(&c.name))
                .collect::<Vec<_>>()
                .join(",\n       ");
            format!(
                "-- {id}: one row per {key}, from the database table (the `sources` of product.odps.yaml).
-- Each source and each input port is a table named after it. DataFusion SQL.
SELECT {list}
FROM raw_{name}
WHERE {key} IS NOT NULL
",
                key = sql_name(&key.name)
            )
        }
        Kind::Source => {
            // Raw files carry text: each column is cast to its contract type.
            let casts = columns
                .iter()
                .map(|c| match c.logical.as_str() {
                    "number" => format!("CAST({0} AS DOUBLE) AS {0}", c.name),
                    "integer" => format!("CAST({0} AS BIGINT) AS {0}", c.name),
                    "timestamp" => format!("CAST({0} AS TIMESTAMP) AS {0}", c.name),
                    "date" => format!("CAST({0} AS DATE) AS {0}", c.name),
                    "boolean" => format!("CAST({0} AS BOOLEAN) AS {0}", c.name),
                    _ => format!("CAST({0} AS VARCHAR) AS {0}", c.name),
                })
                .collect::<Vec<_>>()
                .join(",\n       ");
            format!(
                "-- {id}: one row per {key}, from the raw extract (the `sources` of product.odps.yaml).
-- Each source and each input port is a table named after it. DataFusion SQL.
SELECT {casts}
FROM raw_{name}
WHERE {key} IS NOT NULL
",
                key = key.name
            )
        }
        Kind::Aggregate => {
            let from = input_name(&inputs[0], inputs);
            format!(
                "-- {id}: rows of {upstream} per {group}. Each input port is a table named after it.
SELECT {group}, COUNT(*) AS row_count
FROM {from}
WHERE {group} IS NOT NULL
GROUP BY {group}
",
                upstream = inputs[0].contract_id(),
                group = columns[0].name,
            )
        }
        Kind::Derived | Kind::ConsumerAligned => {
            let from = input_name(&inputs[0], inputs);
            let mut sql = format!(
                "-- {id}, from {upstream}. Each input port is a table named after it.
SELECT {list}
FROM {from}
",
                upstream = inputs[0].contract_id()
            );
            if inputs.len() > 1 {
                let others: Vec<String> =
                    inputs[1..].iter().map(|i| input_name(i, inputs)).collect();
                sql.insert_str(
                    0,
                    &format!(
                        "-- Also readable here: {} (join them as you need).\n",
                        others.join(", ")
                    ),
                );
            }
            sql
        }
    };

    let mut files = vec![
        ("product.odps.yaml".to_owned(), descriptor),
        (format!("contracts/{name}.odcs.yaml"), contract),
        ("transform.sql".to_owned(), transform),
    ];
    if args.kind == Kind::Source {
        files.push((format!("data/{name}.csv"), sample(columns)));
    }
    files.push((
        "policies/domain_rules.rego".to_owned(),
        policy(domain, name),
    ));
    files.push((
        "policies/domain_rules_test.rego".to_owned(),
        policy_test(domain, name),
    ));
    files.push(("README.md".to_owned(), readme(args, &id, &title, database)));
    // Its alerting rules and dashboard, from the contract just written.
    let source = |path: &str, text: &str| mesh_catalog::publish::Source {
        path: path.to_owned(),
        text: text.to_owned(),
    };
    let bundle = mesh_catalog::Bundle {
        descriptor: source(&files[0].0, &files[0].1),
        contracts: vec![source(&files[1].0, &files[1].1)],
        transform: None,
    };
    for (name, text) in crate::monitoring::files(&bundle, "") {
        files.push((format!("{}/{name}", crate::monitoring::FOLDER), text));
    }
    files
}

/// An input port's name: the upstream port's, or `<product>_<port>` when two share a name.
fn input_name(input: &Input, all: &[Input]) -> String {
    let clash = all.iter().filter(|i| i.port == input.port).count() > 1;
    if clash {
        format!("{}_{}", input.product, input.port)
    } else {
        input.port.clone()
    }
}

/// Ten rows of sample data for a source product's columns.
fn sample(columns: &[Column]) -> String {
    let header: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut out = header.join(",") + "\n";
    let labels = ["north", "south", "east", "west", "central"];
    for i in 1..=10 {
        let row: Vec<String> = columns
            .iter()
            .map(|c| match c.logical.as_str() {
                "number" => format!("{}.{:02}", 10 * i, (i * 7) % 100),
                "integer" => i.to_string(),
                "timestamp" => format!("2026-11-{:02}T{:02}:00:00Z", i, 8 + i),
                "date" => format!("2026-11-{i:02}"),
                "boolean" => (i % 2 == 0).to_string(),
                _ if c.key || c.unique => format!("{}-{i:04}", c.name.trim_end_matches("_id")),
                _ => labels[i % labels.len()].to_owned(),
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn policy(domain: &str, name: &str) -> String {
    format!(
        r#"# METADATA
# title: Every {domain} contract names its rows' owner
# description: A local policy of the {domain} domain; add your own rules here. `mesh lint` and
#   `mesh policy check` run it; `mesh policy publish policies --domain {domain}` makes the catalog
#   judge every {domain} publish by it.
# custom:
#   id: {domain}-{slug}-described
#   type: interoperability
#   enforcement: warn
package {domain}.{name}.rules

import rego.v1

# Every column says what it holds.
deny contains v if {{
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	not prop.description
	v := {{"msg": sprintf("column %s.%s has no description", [table.name, prop.name]), "path": sprintf("contracts.%s.schema.%s.properties.%s", [port, table.name, prop.name])}}
}}
"#,
        slug = name.replace('_', "-"),
    )
}

fn policy_test(domain: &str, name: &str) -> String {
    format!(
        r#"package {domain}.{name}.rules_test

import rego.v1

test_undescribed_column_is_reported if {{
	count(data.{domain}.{name}.rules.deny) == 1 with input as {{"contracts": {{"p": {{"schema": [{{"name": "t", "properties": [{{"name": "c"}}]}}]}}}}}}
}}

test_described_column_passes if {{
	count(data.{domain}.{name}.rules.deny) == 0 with input as {{"contracts": {{"p": {{"schema": [{{"name": "t", "properties": [{{"name": "c", "description": "what c is"}}]}}]}}}}}}
}}
"#
    )
}

fn readme(args: &ProductArgs, id: &str, title: &str, database: Option<&DbSpec>) -> String {
    let inputs = if let Some(db) = database {
        format!(
            "It reads table `{}` of `{}` (see `sources` in `product.odps.yaml`; a platform admin \
             registers the database with `mesh location add NAME {} --domain {}`); credentials \
             come from the runner's environment (`MESH_SOURCE_RAW_{}_USERNAME` / `_PASSWORD`). \
             `data/` holds sample rows for the contract's CI test.",
            db.table,
            db.url,
            db.url,
            args.domain,
            args.name.to_uppercase()
        )
    } else if args.inputs.is_empty() {
        "It reads the raw extract in `data/` (see `sources` in `product.odps.yaml`); point `path` at \
         your real data (a file, a folder, a glob or an `s3://` URL)."
            .to_owned()
    } else {
        format!(
            "It reads {} through input ports: each is a table in `transform.sql`.",
            args.inputs.join(", ")
        )
    };
    format!(
        "# {title} (`{id}`)

A {kind} data product of the {domain} domain, owned by {owner}. {inputs}

| file | what |
|---|---|
| `product.odps.yaml` | identity, owner, input and output ports (ODPS) |
| `contracts/*.odcs.yaml` | the output port's schema, quality rules and SLA (ODCS): the promise to consumers |
| `transform.sql` | how the output is computed (DataFusion SQL) |
| `policies/` | this domain's own rules (Rego) and their tests |
| `monitoring/` | Prometheus alerting rules and a Grafana dashboard for the SLA, generated from the contract (`mesh plan` keeps them in step) |

```sh
mesh lint .                 # schemas, semantics and the governance policies
mesh policy test policies   # the Rego tests of the local policies
mesh publish .              # register this version in the catalog
mesh run .                  # transform, check the contract on the new data, then commit it
```

Before the first publish: write the purpose in `product.odps.yaml`, set the owner's e-mail,
describe each column in the contract, and adjust the quality rules and SLA to what you promise.
A breaking change to the contract needs a new major version (`mesh changelog` tells).

CI is the workspace's `.github/workflows/mesh.yml` (written by `mesh new`): on a pull request it
lints, tests and plans every product the change touches; on main it applies the plan and runs them.
",
        kind = args.kind.as_str(),
        domain = args.domain,
        owner = args.owner,
    )
}
