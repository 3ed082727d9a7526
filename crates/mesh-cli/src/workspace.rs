//! The workspace a command runs in: `mesh.toml`, found in the current folder or above, names the
//! catalog. `--catalog URL` (or `MESH_CATALOG`) overrides it, so CI can point at PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use mesh_catalog::Catalog;

use crate::cmd::init::CONFIG_FILE;

/// Where the catalog is, for every command that reads or writes it. Global, so a command with
/// subcommands (`mesh access`) takes them before or after its subcommand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CatalogArgs {
    /// The catalog: sqlite://FILE or postgres://user@host:port/database (default: MESH_CATALOG,
    /// else the one in mesh.toml, found in this folder or above).
    #[arg(long, value_name = "URL", global = true)]
    catalog: Option<String>,

    /// A `mesh serve` to talk to instead of a catalog database (http://host:port; default:
    /// MESH_SERVER).
    #[arg(long, value_name = "URL", conflicts_with = "catalog", global = true)]
    server: Option<String>,

    /// An API token: the one `--server` is called with; with the catalog database, act as its
    /// principal (its roles and grants) instead of as the catalog's admin (default: MESH_TOKEN).
    #[arg(long, global = true)]
    token: Option<String>,
}

/// A setting from the environment; unset and empty alike are `None`: CI systems set a variable
/// nobody configured to the empty string (GitHub Actions' `${{ vars.X }}`), which must not count
/// as a value (nor conflict with another setting).
pub(crate) fn env_setting(name: &str) -> Option<String> {
    // A secret pasted with its line break is the secret without it.
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[derive(Debug, serde::Deserialize)]
struct Config {
    catalog: Option<CatalogConfig>,
    storage: Option<StorageConfig>,
}

/// The folder holding mesh.toml, searching up from the current folder (as a relative path);
/// else the current folder.
pub(crate) fn root() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut up = PathBuf::new();
    for dir in here.ancestors() {
        if dir.join(CONFIG_FILE).is_file() {
            return if up.as_os_str().is_empty() {
                PathBuf::new()
            } else {
                up
            };
        }
        up.push("..");
    }
    PathBuf::new()
}

/// mesh.toml's `[identity]` table (the identity provider `mesh serve` trusts), when the current
/// folder is in a workspace that has one.
pub(crate) fn identity_config() -> anyhow::Result<Option<mesh_server::idp::IdpConfig>> {
    #[derive(serde::Deserialize)]
    struct WithIdentity {
        identity: Option<mesh_server::idp::IdpConfig>,
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let Some(path) = find_config(&cwd) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let parsed: WithIdentity = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: [identity]: {e}", path.display()))?;
    Ok(parsed.identity)
}

#[derive(Debug, serde::Deserialize)]
struct StorageConfig {
    url: Option<String>,
}

/// mesh.toml's `[engine]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineConfig {
    /// `2GiB`, `512MiB`, `4GB` or bytes.
    memory_limit: Option<toml::Spanned<String>>,
    /// Where spill files go; relative to the workspace root.
    spill_dir: Option<String>,
}

/// The engine's limits for this process: mesh.toml's `[engine] memory_limit` and `spill_dir`
/// (`MESH_MEMORY_LIMIT` overrides the limit), applied to every session the command opens.
pub(crate) fn engine_limits() -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct WithEngine {
        engine: Option<EngineConfig>,
    }
    let mut limits = mesh_engine::Limits::default();
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    if let Some(path) = find_config(&cwd) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let at = |offset: usize| {
            let (l, c) = line_col(&text, offset);
            format!("{}:{l}:{c}", path.display())
        };
        let parsed: WithEngine = toml::from_str(&text).map_err(|e| {
            let place = e.span().map_or(path.display().to_string(), |s| at(s.start));
            anyhow::anyhow!("{place}: {}", e.message())
        })?;
        if let Some(engine) = parsed.engine {
            if let Some(limit) = engine.memory_limit {
                limits.memory = Some(parse_size(limit.get_ref()).map_err(|e| {
                    anyhow::anyhow!("{}: memory_limit: {e}", at(limit.span().start))
                })?);
            }
            let root = path.parent().unwrap_or(Path::new("."));
            limits.spill_dir = engine.spill_dir.map(|d| root.join(d));
        }
    }
    if let Ok(limit) = std::env::var("MESH_MEMORY_LIMIT") {
        limits.memory =
            Some(parse_size(&limit).map_err(|e| anyhow::anyhow!("MESH_MEMORY_LIMIT: {e}"))?);
    }
    mesh_engine::limit(&limits).map_err(|e| anyhow::anyhow!("[engine]: {e}"))
}

/// `2GiB`, `512MiB`, `64KiB`, `4GB`, `500MB` or a number of bytes.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; write e.g. 2GiB, 512MiB or 4GB"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 2GiB, 512MiB or 4GB"))?;
    let bytes = number * scale;
    // Below a few MiB no query can run; above the address space is a typo.
    if !(bytes >= (16 << 20) as f64 && bytes < usize::MAX as f64) {
        return Err(format!(
            "{text:?} is out of range: the engine needs at least 16MiB"
        ));
    }
    Ok(bytes as usize)
}

#[derive(Debug, serde::Deserialize)]
struct CatalogConfig {
    url: Option<String>,
}

impl CatalogArgs {
    /// `--catalog`, else MESH_CATALOG (unless `--server` was given).
    fn catalog_setting(&self) -> Option<String> {
        self.catalog.clone().or_else(|| {
            self.server
                .is_none()
                .then(|| env_setting("MESH_CATALOG"))
                .flatten()
        })
    }

    /// `--server`, else MESH_SERVER (unless `--catalog` was given); both from the environment
    /// is a mistake to say, not a guess.
    fn server_setting(&self) -> anyhow::Result<Option<String>> {
        if self.server.is_some() {
            return Ok(self.server.clone());
        }
        if self.catalog.is_some() {
            return Ok(None);
        }
        let server = env_setting("MESH_SERVER");
        if server.is_some() && env_setting("MESH_CATALOG").is_some() {
            bail!(
                "MESH_SERVER and MESH_CATALOG are both set: a command talks to a server or to the catalog database, not both; unset one"
            );
        }
        Ok(server)
    }

    /// `--token`, else MESH_TOKEN.
    fn token_setting(&self) -> Option<String> {
        self.token.clone().or_else(|| env_setting("MESH_TOKEN"))
    }

    /// The catalog URL, with a relative SQLite path resolved against the workspace root.
    pub(crate) fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = self.catalog_setting() {
            return Ok(url);
        }
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let Some(config) = find_config(&cwd) else {
            bail!(
                "no mesh workspace here ({CONFIG_FILE} not found in {} or above): run `mesh init`, or pass --catalog URL",
                cwd.display()
            );
        };
        config_url(&config)
    }

    /// The catalog of the workspace whose settings are `config` (what `mesh init` creates).
    pub(crate) fn of_workspace(config: &Path) -> anyhow::Result<CatalogArgs> {
        Ok(CatalogArgs {
            catalog: Some(config_url(config)?),
            server: None,
            token: None,
        })
    }

    /// Where output ports' Delta tables go: `MESH_STORAGE`, else mesh.toml's `[storage] url`
    /// (a relative `file://` path resolved against the workspace root), else `.mesh/data`.
    pub(crate) fn storage(&self) -> anyhow::Result<String> {
        if let Some(url) = env_setting("MESH_STORAGE") {
            return Ok(url);
        }
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        // The real folder (links resolved), so that managed storage is recognized however a
        // path to it is spelled.
        let real = |folder: &Path| std::fs::canonicalize(folder).unwrap_or(folder.to_path_buf());
        let Some(config) = find_config(&cwd) else {
            return Ok(format!(
                "file://{}",
                real(&cwd).join(".mesh/data").display()
            ));
        };
        let text = std::fs::read_to_string(&config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let parsed: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", config.display(), e.message()))?;
        let url = parsed
            .storage
            .and_then(|s| s.url)
            .unwrap_or_else(|| "file://.mesh/data".to_owned());
        let root = config.parent().unwrap_or(Path::new("."));
        Ok(match url.strip_prefix("file://") {
            Some(path) if Path::new(path).is_relative() => {
                format!("file://{}", real(root).join(path).display())
            }
            _ => url,
        })
    }

    /// The catalog the command talks to: a server when `--server` is given, else the database
    /// (as its local admin, or as the principal of `--token`).
    pub(crate) async fn connect(&self) -> anyhow::Result<crate::client::Client> {
        use crate::client::{Local, Remote};
        if let Some(server) = self.server_setting()? {
            return Ok(Box::new(Remote::new(&server, self.token_setting())?));
        }
        let catalog = self.open().await?;
        let who = match &self.token_setting() {
            Some(token) => catalog
                .authenticate(token)
                .await
                .map_err(|e| anyhow::anyhow!("--token: {e}"))?,
            None => mesh_catalog::Principal::local(),
        };
        Ok(Box::new(Local::new(
            mesh_service::Service::new(catalog),
            who,
        )))
    }

    /// Opens (and migrates) the catalog database.
    pub(crate) async fn open(&self) -> anyhow::Result<Catalog> {
        if self.server_setting()?.is_some() {
            bail!("this command works on the catalog database itself: use --catalog, not --server");
        }
        let url = self.url()?;
        if let Some(path) = sqlite_path(&url)
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let store = mesh_catalog::store::open(&url)
            .await
            .with_context(|| format!("cannot open the catalog at {}", redact(&url)))?;
        // The standard policy pack governs every publish, with the global and domain policies
        // published to the catalog.
        // Output ports' tables go where the catalog says: under this storage.
        let storage = self.storage()?;
        Catalog::new(Arc::clone(&store))
            .with_storage(&storage)
            .with_policies(mesh_policy::standard())
            .map_err(|e| anyhow::anyhow!("the standard policy pack does not load: {e:?}"))
    }
}

/// The catalog URL a settings file names, a relative SQLite path resolved against its folder.
fn config_url(config: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let parsed: Config = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| line_col(&text, s.start))
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {}", config.display(), e.message())
    })?;
    let url = parsed
        .catalog
        .and_then(|c| c.url)
        .unwrap_or_else(|| "sqlite://.mesh/catalog.db".to_owned());
    let root = config.parent().unwrap_or(Path::new("."));
    Ok(resolve(&url, root))
}

fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|p| p.is_file())
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    Some(rest.strip_prefix("//").unwrap_or(rest))
}

/// A relative `sqlite://` path is relative to the workspace root.
fn resolve(url: &str, root: &Path) -> String {
    match sqlite_path(url) {
        Some(path) if Path::new(path).is_relative() => {
            format!("sqlite://{}", root.join(path).display())
        }
        _ => url.to_owned(),
    }
}

/// The URL without a password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        use super::parse_size;
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("67108864"), Ok(64 << 20));
        for bad in [
            "",
            "two gigs",
            "2 parsecs",
            "1MiB",
            "-5GiB",
            "99999999999TiB",
            "GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn relative_sqlite_paths_resolve_against_the_workspace() {
        assert_eq!(
            resolve("sqlite://.mesh/catalog.db", Path::new("/w")),
            "sqlite:///w/.mesh/catalog.db"
        );
        assert_eq!(
            resolve("sqlite:///abs.db", Path::new("/w")),
            "sqlite:///abs.db"
        );
        assert_eq!(
            resolve("postgres://h/db", Path::new("/w")),
            "postgres://h/db"
        );
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(line_col("a\nbc", 3), (2, 2));
    }
}
