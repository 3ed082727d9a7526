//! The workspace's CI: `mesh ci workflow` writes (or brings up to date) the one GitHub Actions
//! workflow at the workspace root, `.github/workflows/mesh.yml`; `mesh ci products --since REF`
//! lists the product folders a change touched, upstream first — the workflow's job matrix.
//!
//! The workflow is generic: it finds the changed products itself, so adding a product needs no
//! edit of it. `mesh new` writes it with the first product and refreshes it while it still
//! carries the generated marker; a workflow without the marker is the team's and is left alone.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::output::{self, LOCATION, OK, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Write `.github/workflows/mesh.yml` at the workspace root, or bring a generated one up to
    /// date (one without the generated marker is left alone unless --force).
    Workflow(WorkflowArgs),
    /// The product folders changed since a commit, upstream first (every product when the
    /// commit is unknown, or mesh.toml or the platform's policies changed).
    Products(ProductsArgs),
    /// Write the products' monitoring files (Prometheus alerting rules, a Grafana dashboard)
    /// from their contracts, touching no catalog: the named product folders, else every
    /// product with a `monitoring/` folder.
    Monitoring(MonitoringArgs),
}

#[derive(Debug, clap::Args)]
struct MonitoringArgs {
    /// Product folders (default: every product of the workspace with a `monitoring/` folder).
    dirs: Vec<PathBuf>,
    /// The workspace root (default: the folder of mesh.toml, or the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct WorkflowArgs {
    /// The workspace root (default: the folder of mesh.toml, or the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Overwrite a workflow that is not (or no longer) the generated one.
    #[arg(long)]
    force: bool,
    /// GitLab CI's pipeline (`.gitlab-ci.yml`) instead of GitHub Actions' workflow; once it
    /// exists, `mesh new` keeps it up to date too.
    #[arg(long)]
    gitlab: bool,
}

#[derive(Debug, clap::Args)]
struct ProductsArgs {
    /// The commit to compare HEAD with (a pull request's base, a push's `before`); empty, all
    /// zeros or unknown to git: every product.
    #[arg(long, default_value = "")]
    since: String,
    /// The workspace root (default: the folder of mesh.toml, or the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
    /// `json`: one line, a JSON array of folders (for `$GITHUB_OUTPUT`); text: one per line.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    match &args.what {
        What::Workflow(a) => {
            let root = root(a.root.as_ref());
            let kind = if a.gitlab { Ci::GitLab } else { Ci::GitHub };
            let written = write_ci(&root, kind, a.force)?;
            let mut out = output::stdout();
            let path = root.join(kind.path());
            match written {
                Written::Created | Written::Updated => writeln!(
                    out,
                    "{} {}",
                    paint(
                        OK,
                        if written == Written::Created {
                            "Created"
                        } else {
                            "Updated"
                        }
                    ),
                    paint(LOCATION, &path.display().to_string())
                )?,
                Written::Current => writeln!(out, "{} is up to date", path.display())?,
                Written::Kept => {
                    output::warning(&format!(
                        "{} is not the generated workflow (its first line is not the marker): left alone; --force replaces it",
                        path.display()
                    ));
                    return Ok(Outcome::Findings);
                }
            }
            Ok(Outcome::Ok)
        }
        What::Monitoring(a) => monitoring(a),
        What::Products(a) => {
            let root = root(a.root.as_ref());
            let folders = changed_products(&root, &a.since)?;
            let mut out = std::io::stdout().lock();
            if a.output == OutputFormat::Json {
                serde_json::to_writer(&mut out, &folders)?;
                writeln!(out)?;
            } else {
                for folder in &folders {
                    writeln!(out, "{folder}")?;
                }
            }
            Ok(Outcome::Ok)
        }
    }
}

/// `--root`, else the workspace's (the folder of mesh.toml, or this one).
fn root(given: Option<&PathBuf>) -> PathBuf {
    let root = given.cloned().unwrap_or_else(crate::workspace::root);
    if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    }
}

fn monitoring(args: &MonitoringArgs) -> anyhow::Result<Outcome> {
    let mut out = output::stdout();
    let mut write = |dir: &Path, bundle: &mesh_catalog::Bundle| -> anyhow::Result<()> {
        let folder = dir.join(crate::monitoring::FOLDER);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let shown = dir.display().to_string();
        for (name, text) in crate::monitoring::files(bundle, shown.trim_start_matches("./")) {
            let path = folder.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                writeln!(out, "{} is up to date", path.display())?;
                continue;
            }
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(
                out,
                "{} {}",
                paint(OK, "Wrote"),
                paint(LOCATION, &path.display().to_string())
            )?;
        }
        Ok(())
    };
    if args.dirs.is_empty() {
        let root = root(args.root.as_ref());
        let repo = crate::platform::load(&root)?;
        for (folder, bundle) in &repo.products {
            let dir = root.join(folder);
            if dir.join(crate::monitoring::FOLDER).is_dir() {
                write(&dir, bundle)?;
            }
        }
    } else {
        for dir in &args.dirs {
            write(dir, &crate::files::load_bundle(dir)?)?;
        }
    }
    Ok(Outcome::Ok)
}

/// Where the workflow goes, under the workspace root.
pub(crate) const WORKFLOW_PATH: &str = ".github/workflows/mesh.yml";

/// Where GitLab's pipeline goes, under the workspace root.
pub(crate) const GITLAB_PATH: &str = ".gitlab-ci.yml";

/// The CI systems mesh writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ci {
    GitHub,
    GitLab,
}

impl Ci {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Ci::GitHub => WORKFLOW_PATH,
            Ci::GitLab => GITLAB_PATH,
        }
    }

    fn text(self) -> String {
        match self {
            Ci::GitHub => workflow(),
            Ci::GitLab => GITLAB
                .replace("{install}", GITLAB_INSTALL)
                .replace("{version}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The generated workflow's first line: while it is there, `mesh new` and `mesh ci workflow`
/// keep the file up to date.
const MARKER: &str = "# Generated by mesh";

/// What became of the workflow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Created,
    Updated,
    /// Already this mesh's workflow.
    Current,
    /// The team's own (no marker): not touched.
    Kept,
}

/// Writes the GitHub workflow at `root`, or brings a generated one up to date; a generated
/// GitLab pipeline, when there is one, is brought up to date as well.
pub(crate) fn write_workflow(root: &Path, force: bool) -> anyhow::Result<Written> {
    if root.join(GITLAB_PATH).is_file() {
        write_ci(root, Ci::GitLab, false)?;
    }
    write_ci(root, Ci::GitHub, force)
}

/// Writes one CI file at `root`, or brings a generated one up to date.
pub(crate) fn write_ci(root: &Path, kind: Ci, force: bool) -> anyhow::Result<Written> {
    let path = root.join(kind.path());
    let text = kind.text();
    let written = match std::fs::read_to_string(&path) {
        Ok(old) if old == text => return Ok(Written::Current),
        Ok(old) if !old.starts_with(MARKER) && !force => return Ok(Written::Kept),
        Ok(_) => Written::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::Created,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}

/// The product folders (relative to `root`, `/`-separated) changed between `since` and HEAD,
/// upstream first.
fn changed_products(root: &Path, since: &str) -> anyhow::Result<Vec<String>> {
    let repo = crate::platform::load(root)?;
    let everything = || {
        crate::platform::upstream_first(&repo.products)
            .into_iter()
            .map(|(folder, _)| folder.replace('\\', "/"))
            .collect::<Vec<_>>()
    };
    let since = since.trim();
    let known = !since.is_empty()
        && !since.bytes().all(|b| b == b'0')
        && git(root, &["cat-file", "-e", &format!("{since}^{{commit}}")]).is_ok();
    if !known {
        return Ok(everything());
    }
    let diff = git(
        root,
        &[
            "diff",
            "--name-only",
            "--relative",
            "--no-renames",
            since,
            "HEAD",
        ],
    )?;
    let paths: Vec<&str> = diff.lines().filter(|l| !l.is_empty()).collect();
    // What every product's lint reads: the settings and the platform's policies.
    let shared = |p: &str| {
        p == crate::cmd::init::CONFIG_FILE
            || p.starts_with(&format!("{}/policies/", crate::platform::FOLDER))
    };
    if paths.iter().any(|p| shared(p)) {
        return Ok(everything());
    }
    let touched: BTreeSet<String> = repo
        .products
        .iter()
        .map(|(folder, _)| folder.replace('\\', "/"))
        .filter(|folder| {
            paths.iter().any(|p| {
                p.strip_prefix(folder.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect();
    Ok(everything()
        .into_iter()
        .filter(|f| touched.contains(f))
        .collect())
}

/// `git ARGS` in `dir`: its standard output, or why it failed.
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The workflow. Everything it needs comes from the repository's settings: the variable
/// `MESH_SERVER` (the catalog's URL) and the secret `MESH_TOKEN`, or the secret `MESH_CATALOG` (a
/// PostgreSQL URL) with the storage in mesh.toml or `MESH_STORAGE`; mesh itself from `MESH_URL`
/// (a release binary) or `MESH_GIT` (+ `MESH_REF`) with `cargo install`.
pub(crate) fn workflow() -> String {
    WORKFLOW
        .replace("{install}", INSTALL)
        .replace("{version}", env!("CARGO_PKG_VERSION"))
}

/// The step every job starts with after the checkout: mesh on the PATH.
const INSTALL: &str = r###"      - name: Install mesh
        env:
          MESH_URL: ${{ vars.MESH_URL }}
          MESH_GIT: ${{ vars.MESH_GIT }}
          MESH_REF: ${{ vars.MESH_REF }}
        run: |
          if command -v mesh >/dev/null; then mesh --version; exit 0; fi
          mkdir -p "$RUNNER_TEMP/bin"
          if [ -n "$MESH_URL" ]; then
            curl -fsSL "$MESH_URL" -o "$RUNNER_TEMP/bin/mesh"
            chmod +x "$RUNNER_TEMP/bin/mesh"
          elif [ -n "$MESH_GIT" ]; then
            cargo install --locked --root "$RUNNER_TEMP" --git "$MESH_GIT" ${MESH_REF:+--tag "$MESH_REF"} mesh-cli
          else
            echo "::error::set the repository variable MESH_URL (a mesh binary to download) or MESH_GIT (the git URL to build mesh from)"
            exit 1
          fi
          echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
          "$RUNNER_TEMP/bin/mesh" --version
"###;

const WORKFLOW: &str = r###"# Generated by mesh {version} (`mesh ci workflow`): while this line is here, `mesh new` and
# `mesh ci workflow` rewrite this file; delete the line to keep your own edits.
#
# Pull requests: for each product folder changed, lint -> policy tests -> `mesh test` on its sample
# data; then `mesh plan` for the whole repository, posted as the job summary.
# main: the same checks, then `mesh apply --yes`, then `mesh run` of each changed product.
#
# Repository settings (docs/gitops.md):
#   variables  MESH_SERVER  the catalog's URL (a `mesh serve`), or
#              (secret) MESH_CATALOG  its database (postgres://...), with [storage] in mesh.toml
#              MESH_URL     where to download a mesh binary (a release asset), or
#              MESH_GIT     the git URL mesh is built from with `cargo install` (MESH_REF: a tag)
#              MESH_STORAGE where runs write, overriding mesh.toml's [storage]
#   secrets    MESH_TOKEN   a token of this repository's principal (an admin, or a domain's CI)
#              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  when the storage is S3
# Only the "Plan and apply" job sees the catalog's settings and secrets.
name: mesh
on:
  push:
    branches: [main]
  pull_request:
permissions:
  contents: read
concurrency:
  group: mesh-${{ github.ref }}
  cancel-in-progress: ${{ github.event_name == 'pull_request' }}
defaults:
  run:
    shell: bash
env:
  NO_COLOR: "1"
jobs:
  changes:
    name: Changed products
    runs-on: ubuntu-latest
    outputs:
      products: ${{ steps.changed.outputs.products }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
{install}      - id: changed
        name: Find the changed products
        env:
          SINCE: ${{ github.event.pull_request.base.sha || github.event.before }}
        run: |
          products="$(mesh ci products --since "$SINCE" --output json)"
          echo "products=$products" >> "$GITHUB_OUTPUT"
          echo "changed: $products"

  product:
    name: Check ${{ matrix.product }}
    needs: changes
    if: needs.changes.outputs.products != '[]'
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        product: ${{ fromJSON(needs.changes.outputs.products) }}
    defaults:
      run:
        working-directory: ${{ matrix.product }}
    steps:
      - uses: actions/checkout@v4
{install}      - name: Lint (schemas, semantics, policies)
        run: mesh lint .
      - name: Policy tests
        run: |
          if [ -d policies ]; then mesh policy test policies; else echo "no policies/ in this product"; fi
      - name: Test the contracts on the sample data
        run: |
          for contract in contracts/*.odcs.yaml; do
            port="$(basename "$contract" .odcs.yaml)"
            if [ -f "data/$port.csv" ]; then
              mesh test "$contract" --data "data/$port.csv" --format csv --checks schema,quality
            else
              echo "no sample data for $port (data/$port.csv): its contract is tested on its first run"
            fi
          done
      - name: Monitoring files in step with the contracts
        run: |
          if [ -d monitoring ]; then
            mesh ci monitoring .
            if [ -n "$(git status --porcelain -- monitoring)" ]; then
              git status --short -- monitoring
              echo "::error::monitoring/ is out of step with the contracts: run mesh ci monitoring and commit the result"
              exit 1
            fi
          fi

  platform:
    name: Plan and apply
    needs: [changes, product]
    if: ${{ !cancelled() && needs.changes.result == 'success' && needs.product.result != 'failure' }}
    runs-on: ubuntu-latest
    env:
      MESH_SERVER: ${{ vars.MESH_SERVER }}
      MESH_TOKEN: ${{ secrets.MESH_TOKEN }}
      MESH_CATALOG: ${{ secrets.MESH_CATALOG }}
      MESH_STORAGE: ${{ vars.MESH_STORAGE }}
      AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
      AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
      AWS_REGION: ${{ vars.AWS_REGION }}
      AWS_ENDPOINT_URL: ${{ vars.AWS_ENDPOINT_URL }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
{install}      - name: Check where the catalog is
        run: |
          if [ -z "$MESH_SERVER$MESH_CATALOG" ]; then
            echo "::error::set the repository variable MESH_SERVER (or the secret MESH_CATALOG): without it mesh would plan against a catalog on this runner's disk"
            exit 1
          fi
      - name: Platform policy tests
        run: |
          if [ -d platform/policies ]; then mesh policy test platform/policies; else echo "no platform/policies"; fi
      - name: Plan
        if: github.event_name == 'pull_request'
        run: |
          status=0
          mesh plan > "$RUNNER_TEMP/plan.txt" || status=$?
          {
            echo "## mesh plan"
            echo
            echo '```'
            cat "$RUNNER_TEMP/plan.txt"
            echo '```'
          } >> "$GITHUB_STEP_SUMMARY"
          cat "$RUNNER_TEMP/plan.txt"
          # 0: nothing to change, 2: changes; anything else is an error. A step this repository's
          # token would be refused fails the check now, not the apply after the merge.
          if grep -q "would be refused" "$RUNNER_TEMP/plan.txt"; then
            echo "::error::the plan has steps that would be refused (see the summary)"
            exit 1
          fi
          [ "$status" -eq 0 ] || [ "$status" -eq 2 ]
      - name: Apply
        if: github.event_name == 'push' && github.ref == 'refs/heads/main'
        run: |
          mesh apply --yes | tee "$RUNNER_TEMP/apply.txt"
          {
            echo "## mesh apply"
            echo
            echo '```'
            cat "$RUNNER_TEMP/apply.txt"
            echo '```'
          } >> "$GITHUB_STEP_SUMMARY"
      - name: Run the changed products, upstream first
        if: github.event_name == 'push' && github.ref == 'refs/heads/main'
        env:
          SINCE: ${{ github.event.before }}
        run: |
          products="$(mesh ci products --since "$SINCE")"
          while IFS= read -r product <&3; do
            [ -n "$product" ] || continue
            echo "::group::mesh run $product"
            mesh run "$product"
            echo "::endgroup::"
          done 3<<< "$products"
"###;

/// GitLab CI's pipeline: the same checks, plan and apply as the GitHub workflow, in stages.
const GITLAB: &str = r###"# Generated by mesh {version} (`mesh ci workflow --gitlab`): while this line is here, `mesh new`
# and `mesh ci workflow --gitlab` rewrite this file; delete the line to keep your own edits.
#
# Merge requests: lint -> policy tests -> `mesh test` on the sample data of each product folder
# changed, then `mesh plan` of the whole repository (kept as the artifact plan.txt).
# The default branch: the same checks, then `mesh apply --yes` and `mesh run` of the changed
# products, upstream first.
#
# CI/CD variables (docs/gitops.md): MESH_SERVER (or MESH_CATALOG), MESH_TOKEN, MESH_URL or
# MESH_GIT (+ MESH_REF), MESH_STORAGE, AWS_*. Mask the secret ones and scope them to the `mesh`
# environment, so that only the plan and apply jobs see them; MESH_URL/MESH_GIT stay unscoped
# (every job installs mesh). Protected variables never reach merge requests from unprotected
# branches: give plans a token of their own there, or plan from protected branches.
workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"
stages: [check, plan, apply]
variables:
  NO_COLOR: "1"
  GIT_DEPTH: "0"
default:
  image: rust:1-bookworm
  cache:
    key: mesh-tools-$MESH_REF
    paths: [.mesh-tools/]
  before_script:
{install}
check:
  stage: check
  script:
    - |
      since="${CI_MERGE_REQUEST_DIFF_BASE_SHA:-$CI_COMMIT_BEFORE_SHA}"
      products="$(mesh ci products --since "$since")"
      echo "changed: $products"
      while IFS= read -r product <&3; do
        [ -n "$product" ] || continue
        echo "== $product"
        (
          cd "$product"
          mesh lint .
          if [ -d policies ]; then mesh policy test policies; fi
          for contract in contracts/*.odcs.yaml; do
            port="$(basename "$contract" .odcs.yaml)"
            if [ -f "data/$port.csv" ]; then
              mesh test "$contract" --data "data/$port.csv" --format csv --checks schema,quality
            fi
          done
          if [ -d monitoring ]; then
            mesh ci monitoring .
            if [ -n "$(git status --porcelain -- monitoring)" ]; then
              echo "monitoring/ of $product is out of step with the contracts: run mesh ci monitoring and commit the result"
              exit 1
            fi
          fi
        )
      done 3<<< "$products"

plan:
  stage: plan
  interruptible: true
  environment:
    name: mesh
    action: prepare
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - |
      if [ -z "$MESH_SERVER$MESH_CATALOG" ]; then
        echo "set the CI/CD variable MESH_SERVER (or MESH_CATALOG): without it mesh would plan against a catalog on this runner's disk"
        exit 1
      fi
    - if [ -d platform/policies ]; then mesh policy test platform/policies; fi
    - |
      status=0
      mesh plan > plan.txt || status=$?
      cat plan.txt
      if grep -q "would be refused" plan.txt; then
        echo "the plan has steps that would be refused"
        exit 1
      fi
      [ "$status" -eq 0 ] || [ "$status" -eq 2 ]
  artifacts:
    expose_as: mesh plan
    paths: [plan.txt]
    when: always

apply:
  stage: apply
  environment:
    name: mesh
  resource_group: mesh
  interruptible: false
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"
  script:
    - |
      if [ -z "$MESH_SERVER$MESH_CATALOG" ]; then
        echo "set the CI/CD variable MESH_SERVER (or MESH_CATALOG): without it mesh would apply to a catalog on this runner's disk"
        exit 1
      fi
    - if [ -d platform/policies ]; then mesh policy test platform/policies; fi
    - mesh apply --yes
    - |
      products="$(mesh ci products --since "$CI_COMMIT_BEFORE_SHA")"
      while IFS= read -r product <&3; do
        [ -n "$product" ] || continue
        echo "== mesh run $product"
        mesh run "$product"
      done 3<<< "$products"
"###;

/// The `before_script` of every job: mesh on the PATH.
const GITLAB_INSTALL: &str = r###"    - export PATH="$CI_PROJECT_DIR/.mesh-tools/bin:$PATH"
    - |
      if ! command -v mesh >/dev/null; then
        mkdir -p "$CI_PROJECT_DIR/.mesh-tools/bin"
        if [ -n "$MESH_URL" ]; then
          curl -fsSL "$MESH_URL" -o "$CI_PROJECT_DIR/.mesh-tools/bin/mesh"
          chmod +x "$CI_PROJECT_DIR/.mesh-tools/bin/mesh"
        elif [ -n "$MESH_GIT" ]; then
          cargo install --locked --root "$CI_PROJECT_DIR/.mesh-tools" --git "$MESH_GIT" ${MESH_REF:+--tag "$MESH_REF"} mesh-cli
        else
          echo "set the CI/CD variable MESH_URL (a mesh binary to download) or MESH_GIT (the git URL to build mesh from)"
          exit 1
        fi
      fi
    - mesh --version"###;
