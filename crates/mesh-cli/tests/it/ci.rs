//! The generated CI (issue 26), run: `mesh new` writes `.github/workflows/mesh.yml` at the
//! workspace root, and a small GitHub Actions runner below reads that YAML and carries out its
//! jobs and steps in order — checkouts of a fresh clone, `${{ }}` expressions, `if:`, `needs:`,
//! matrices from a job's outputs, `$GITHUB_OUTPUT`, `$GITHUB_PATH`, `$GITHUB_STEP_SUMMARY` — with
//! the real `mesh` (installed by the workflow's own step from a `file://` URL, as from a release)
//! and a served catalog. A workflow that cannot run on GitHub fails here: an action it does not
//! know, an expression or context it cannot read, a step that exits non-zero. The workflow schema
//! (SchemaStore's, through check-jsonschema) and shellcheck (on every `run:` script) check the
//! file as well. The GitLab CI pipeline (`mesh ci workflow --gitlab`) gets the same: a small
//! GitLab runner and GitLab's schema.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::{code, mesh, stderr, stdout, two_domains};

// --- A small runner ----------------------------------------------------------------------------

/// What triggered the run: `push` or `pull_request`, the ref, the commit checked out, and the
/// event's payload (`github.event`).
struct Event {
    name: &'static str,
    git_ref: String,
    sha: String,
    payload: Value,
}

/// One job's end: `success`, `failure` or `skipped`, its outputs, the summaries its steps wrote,
/// what it printed, and its matrix.
#[derive(Debug, Default)]
struct JobRun {
    result: String,
    outputs: serde_json::Map<String, Value>,
    summary: String,
    log: String,
    matrix: Vec<Value>,
    /// The names of the steps that ran (not skipped).
    ran: Vec<String>,
}

struct Runner<'a> {
    workflow: Value,
    origin: &'a Path,
    vars: Value,
    secrets: Value,
    /// `PATH` for the steps, before what they add through `$GITHUB_PATH`.
    path: String,
    scratch: PathBuf,
}

impl Runner<'_> {
    /// Runs every job, in the order `needs:` allows.
    fn run(&self, event: &Event) -> BTreeMap<String, JobRun> {
        let jobs = self.workflow["jobs"]
            .as_object()
            .expect("the workflow has jobs");
        let mut done: BTreeMap<String, JobRun> = BTreeMap::new();
        while done.len() < jobs.len() {
            let ready = jobs
                .iter()
                .find(|(name, job)| {
                    !done.contains_key(*name) && needs(job).iter().all(|n| done.contains_key(n))
                })
                .unwrap_or_else(|| panic!("jobs wait on each other or on a missing job: {jobs:?}"));
            let (name, job) = (ready.0.clone(), ready.1);
            let run = self.job(&name, job, event, &done);
            done.insert(name, run);
        }
        done
    }

    fn job(
        &self,
        name: &str,
        job: &Value,
        event: &Event,
        done: &BTreeMap<String, JobRun>,
    ) -> JobRun {
        let wanted = needs(job);
        let needs_ctx: serde_json::Map<String, Value> = wanted
            .iter()
            .map(|n| {
                let d = &done[n];
                (n.clone(), json!({"result": d.result, "outputs": d.outputs}))
            })
            .collect();
        let all_succeeded = wanted.iter().all(|n| done[n].result == "success");
        let mut ctx = self.context(event);
        ctx["needs"] = Value::Object(needs_ctx);
        let go = match job.get("if") {
            Some(cond) => condition(cond, &ctx, all_succeeded),
            None => all_succeeded,
        };
        if !go {
            return JobRun {
                result: "skipped".into(),
                ..JobRun::default()
            };
        }
        // The matrix: each key's list (after expressions), combined.
        let mut combos = vec![serde_json::Map::new()];
        if let Some(matrix) = job.pointer("/strategy/matrix").and_then(Value::as_object) {
            for (key, values) in matrix {
                let values = match values {
                    Value::String(s) => interpolate_value(s, &ctx),
                    other => other.clone(),
                };
                let values = values
                    .as_array()
                    .unwrap_or_else(|| panic!("matrix.{key} is not a list: {values}"))
                    .clone();
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.insert(key.clone(), v.clone());
                            c
                        })
                    })
                    .collect();
            }
            assert!(
                !combos.is_empty(),
                "job {name}: an empty matrix fails on GitHub"
            );
        }
        let mut out = JobRun {
            result: "success".into(),
            ..JobRun::default()
        };
        for (i, combo) in combos.into_iter().enumerate() {
            let mut ctx = ctx.clone();
            ctx["matrix"] = Value::Object(combo.clone());
            out.matrix.push(Value::Object(combo));
            let ok = self.instance(&format!("{name}-{i}"), job, &mut ctx, &mut out);
            if !ok {
                out.result = "failure".into();
            }
            if let Some(outputs) = job.get("outputs").and_then(Value::as_object) {
                for (k, v) in outputs {
                    let v = interpolate(v.as_str().unwrap_or_default(), &ctx);
                    out.outputs.insert(k.clone(), Value::String(v));
                }
            }
        }
        out
    }

    /// One run of a job (one matrix combination): its steps, in order.
    fn instance(&self, id: &str, job: &Value, ctx: &mut Value, out: &mut JobRun) -> bool {
        let home = self.scratch.join(id);
        let workspace = home.join("work");
        let temp = home.join("temp");
        fs::create_dir_all(&workspace).unwrap();
        fs::create_dir_all(temp.join("home")).unwrap();
        let mut extra_path: Vec<String> = Vec::new();
        let mut failed = false;
        ctx["steps"] = json!({});
        ctx["runner"] = json!({"os": "Linux", "temp": temp.display().to_string()});
        ctx["github"]["workspace"] = json!(workspace.display().to_string());
        let default_dir = job.pointer("/defaults/run/working-directory").cloned();
        let steps = job["steps"].as_array().expect("a job has steps");
        for (n, step) in steps.iter().enumerate() {
            let name = step["name"]
                .as_str()
                .or(step["uses"].as_str())
                .unwrap_or("step")
                .to_owned();
            let go = match step.get("if") {
                Some(cond) => condition(cond, ctx, !failed),
                None => !failed,
            };
            if !go {
                continue;
            }
            out.ran.push(name.clone());
            out.log.push_str(&format!("== {id} / {name}\n"));
            if let Some(uses) = step["uses"].as_str() {
                if uses.starts_with("actions/checkout@") {
                    // As the action does: the one commit (fetch-depth 1, the default), or the
                    // whole history (fetch-depth 0).
                    let sha = ctx["github"]["sha"].as_str().unwrap().to_owned();
                    let depth = step
                        .pointer("/with/fetch-depth")
                        .map_or(1, |d| number(d) as i64);
                    let url = format!("file://{}", self.origin.display());
                    git(&workspace, &["init", "-q"]);
                    if depth == 0 {
                        git(
                            &workspace,
                            &["fetch", "-q", &url, "+refs/heads/*:refs/remotes/origin/*"],
                        );
                    } else {
                        git(
                            &workspace,
                            &["fetch", "-q", &format!("--depth={depth}"), &url, &sha],
                        );
                    }
                    git(&workspace, &["checkout", "-q", "--detach", &sha]);
                } else {
                    panic!("{id}: the runner cannot run `uses: {uses}` (only actions/checkout)");
                }
                continue;
            }
            let script = step["run"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: step {name} has neither run nor uses"));
            let script = interpolate(script, ctx);
            let dir = step
                .get("working-directory")
                .cloned()
                .or(default_dir.clone())
                .map(|d| interpolate(d.as_str().unwrap_or_default(), ctx))
                .map_or(workspace.clone(), |d| workspace.join(d));
            let files = home.join(format!("step-{n}"));
            fs::create_dir_all(&files).unwrap();
            let (output, summary, path_file) = (
                files.join("output"),
                files.join("summary"),
                files.join("path"),
            );
            for f in [&output, &summary, &path_file] {
                fs::write(f, "").unwrap();
            }
            fs::write(files.join("script.sh"), &script).unwrap();
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            for scope in [self.workflow.get("env"), job.get("env"), step.get("env")]
                .into_iter()
                .flatten()
            {
                for (k, v) in scope.as_object().unwrap() {
                    let text = match v {
                        Value::String(s) => interpolate(s, ctx),
                        other => other.to_string(),
                    };
                    env.insert(k.clone(), text);
                }
            }
            let mut path: Vec<String> = extra_path.iter().rev().cloned().collect();
            path.push(self.path.clone());
            // GitHub's shells: `bash` is `bash --noprofile --norc -eo pipefail {0}`; none named is
            // `bash -e {0}` (no pipefail).
            let shell = step
                .get("shell")
                .or(job.pointer("/defaults/run/shell"))
                .or(self.workflow.pointer("/defaults/run/shell"))
                .and_then(Value::as_str);
            let flags: &[&str] = match shell {
                Some("bash") => &["--noprofile", "--norc", "-eo", "pipefail"],
                None => &["-e"],
                Some(other) => panic!("{id}: the runner knows no shell `{other}`"),
            };
            let result = Command::new("bash")
                .args(flags)
                .arg(files.join("script.sh"))
                .current_dir(&dir)
                .env_clear()
                .env("PATH", path.join(":"))
                .env("HOME", temp.join("home"))
                .env("CI", "true")
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_WORKSPACE", &workspace)
                .env(
                    "GITHUB_EVENT_NAME",
                    ctx["github"]["event_name"].as_str().unwrap(),
                )
                .env("GITHUB_REF", ctx["github"]["ref"].as_str().unwrap())
                .env("GITHUB_SHA", ctx["github"]["sha"].as_str().unwrap())
                .env("GITHUB_OUTPUT", &output)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("GITHUB_PATH", &path_file)
                .env("RUNNER_TEMP", &temp)
                .envs(&env)
                .output()
                .unwrap();
            out.log.push_str(&String::from_utf8_lossy(&result.stdout));
            out.log.push_str(&String::from_utf8_lossy(&result.stderr));
            out.summary.push_str(&fs::read_to_string(&summary).unwrap());
            extra_path.extend(
                fs::read_to_string(&path_file)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            let outputs: serde_json::Map<String, Value> = fs::read_to_string(&output)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect();
            let outcome = if result.status.success() {
                "success"
            } else {
                failed = true;
                out.log.push_str(&format!(
                    "-- {id} / {name}: exit {:?}\n",
                    result.status.code()
                ));
                "failure"
            };
            if let Some(sid) = step["id"].as_str() {
                ctx["steps"][sid] =
                    json!({"outputs": outputs, "outcome": outcome, "conclusion": outcome});
            }
        }
        !failed
    }

    /// The contexts every expression sees.
    fn context(&self, event: &Event) -> Value {
        json!({
            "github": {
                "event_name": event.name,
                "ref": event.git_ref,
                "sha": event.sha,
                "event": event.payload,
            },
            "vars": self.vars,
            "secrets": self.secrets,
            "matrix": {},
            "needs": {},
            "steps": {},
        })
    }
}

fn needs(job: &Value) -> Vec<String> {
    match job.get("needs") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        Some(other) => panic!("needs: {other}"),
    }
}

/// An `if:` — `${{ }}` or bare — with GitHub's rule that a condition naming no status function
/// also needs `success()`.
fn condition(cond: &Value, ctx: &Value, succeeded: bool) -> bool {
    let text = match cond {
        Value::Bool(b) => return *b && succeeded,
        Value::String(s) => s.trim(),
        other => panic!("if: {other}"),
    };
    let text = text
        .strip_prefix("${{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(text);
    let status = ["success()", "failure()", "always()", "cancelled()"]
        .iter()
        .any(|f| text.contains(f));
    let value = Expr::eval(text, ctx, succeeded).unwrap_or_else(|e| panic!("if: {text}: {e}"));
    truthy(&value) && (status || succeeded)
}

/// A string with `${{ }}` expressions replaced by their values.
fn interpolate(text: &str, ctx: &Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("an unclosed ${{{{ in {text:?}"))
            + start;
        let value = Expr::eval(&rest[start + 3..end], ctx, true)
            .unwrap_or_else(|e| panic!("{}: {e}", &rest[start..end + 2]));
        out.push_str(&as_text(&value));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A value that is exactly one `${{ }}` keeps its type (a matrix from `fromJSON`).
fn interpolate_value(text: &str, ctx: &Value) -> Value {
    let t = text.trim();
    match t.strip_prefix("${{").and_then(|t| t.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => {
            Expr::eval(inner, ctx, true).unwrap_or_else(|e| panic!("{t}: {e}"))
        }
        _ => Value::String(interpolate(text, ctx)),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// GitHub's `==`: strings case-insensitively, other mixes as numbers.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => a == b,
        _ => number(a) == number(b),
    }
}

/// The expression language, enough of it: literals, contexts with `.x` and `['x']`, `!`, `==`,
/// `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, parentheses, and the functions the workflow may call.
/// Anything else is an error, so a workflow using it fails here.
struct Expr<'a> {
    tokens: Vec<String>,
    at: usize,
    ctx: &'a Value,
    succeeded: bool,
}

impl<'a> Expr<'a> {
    fn eval(text: &str, ctx: &'a Value, succeeded: bool) -> Result<Value, String> {
        let mut e = Expr {
            tokens: tokenize(text)?,
            at: 0,
            ctx,
            succeeded,
        };
        let v = e.or()?;
        if e.at != e.tokens.len() {
            return Err(format!("unexpected `{}`", e.tokens[e.at]));
        }
        Ok(v)
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            if !truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.compare()?;
        while self.eat("&&") {
            let right = self.compare()?;
            if truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn compare(&mut self) -> Result<Value, String> {
        let left = self.unary()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let right = self.unary()?;
                let (a, b) = (number(&left), number(&right));
                return Ok(Value::Bool(match op {
                    "==" => equal(&left, &right),
                    "!=" => !equal(&left, &right),
                    "<=" => a <= b,
                    ">=" => a >= b,
                    "<" => a < b,
                    _ => a > b,
                }));
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("!") {
            return Ok(Value::Bool(!truthy(&self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Value, String> {
        let mut v = self.primary()?;
        loop {
            if self.eat(".") {
                let key = self.next()?;
                v = v.get(&key).cloned().unwrap_or(Value::Null);
            } else if self.eat("[") {
                let key = self.or()?;
                self.expect("]")?;
                v = match (&v, &key) {
                    (Value::Array(a), k) => a.get(number(k) as usize).cloned().unwrap_or_default(),
                    (_, Value::String(k)) => v.get(k).cloned().unwrap_or_default(),
                    _ => Value::Null,
                };
            } else {
                return Ok(v);
            }
        }
    }

    fn next(&mut self) -> Result<String, String> {
        let t = self.peek().ok_or("the expression ends early")?.to_owned();
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(format!("expected `{t}` at {:?}", self.peek()))
        }
    }

    fn primary(&mut self) -> Result<Value, String> {
        let t = self.next()?;
        if t == "(" {
            let v = self.or()?;
            self.expect(")")?;
            return Ok(v);
        }
        if let Some(s) = t.strip_prefix('\'') {
            return Ok(Value::String(s.to_owned()));
        }
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            return t
                .parse::<f64>()
                .map(|f| json!(f))
                .map_err(|_| format!("not a number: {t}"));
        }
        match t.as_str() {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "null" => return Ok(Value::Null),
            _ => {}
        }
        if self.eat("(") {
            let mut args = Vec::new();
            if !self.eat(")") {
                loop {
                    args.push(self.or()?);
                    if self.eat(")") {
                        break;
                    }
                    self.expect(",")?;
                }
            }
            return self.call(&t, &args);
        }
        match t.as_str() {
            "github" | "vars" | "secrets" | "matrix" | "needs" | "steps" | "runner" => {
                Ok(self.ctx[t.as_str()].clone())
            }
            other => Err(format!("the runner knows no context `{other}`")),
        }
    }

    fn call(&self, f: &str, args: &[Value]) -> Result<Value, String> {
        let text = |i: usize| args.get(i).map(as_text).unwrap_or_default();
        Ok(match f.to_ascii_lowercase().as_str() {
            "success" => Value::Bool(self.succeeded),
            "failure" => Value::Bool(!self.succeeded),
            "always" => Value::Bool(true),
            "cancelled" => Value::Bool(false),
            "fromjson" => serde_json::from_str(&text(0)).map_err(|e| format!("fromJSON: {e}"))?,
            "tojson" => Value::String(serde_json::to_string_pretty(&args[0]).unwrap()),
            "contains" => Value::Bool(match &args[0] {
                Value::Array(a) => a.iter().any(|x| equal(x, &args[1])),
                _ => text(0).to_lowercase().contains(&text(1).to_lowercase()),
            }),
            "startswith" => {
                Value::Bool(text(0).to_lowercase().starts_with(&text(1).to_lowercase()))
            }
            "endswith" => Value::Bool(text(0).to_lowercase().ends_with(&text(1).to_lowercase())),
            other => return Err(format!("the runner knows no function `{other}`")),
        })
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::from("'");
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("an unclosed string in {text:?}")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(s);
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_-".contains(chars[i])) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(&two.as_str()) {
                out.push(two);
                i += 2;
            } else if "!<>()[].,".contains(c) {
                out.push(c.to_string());
                i += 1;
            } else {
                return Err(format!("unexpected `{c}` in {text:?}"));
            }
        }
    }
    Ok(out)
}

// --- Helpers -----------------------------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "mesh test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "mesh test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn workflow_json(ws: &Path) -> Value {
    let text = fs::read_to_string(ws.join(".github/workflows/mesh.yml")).expect("the workflow");
    let parsed = mesh_model::yaml::parse(&text);
    assert!(
        parsed.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        parsed.diagnostics
    );
    parsed.root.expect("a YAML document").to_json()
}

/// `PATH` without any folder holding a `mesh`: the workflow's own step must install it.
fn path_without_mesh() -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !Path::new(d).join("mesh").exists())
        .collect::<Vec<_>>()
        .join(":")
}

fn show(runs: &BTreeMap<String, JobRun>) -> String {
    runs.iter()
        .map(|(name, r)| format!("### {name}: {} {:?}\n{}", r.result, r.matrix, r.log))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes the workspace a repository with its first commit on `main`, and `origin` the bare
/// remote every checkout clones; the commit.
fn repository(ws: &Path, origin: &Path) -> String {
    git(ws, &["init", "-q", "-b", "main"]);
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-q", "-m", "ecommerce.orders"]);
    let o = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(ws)
        .arg(origin)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    git(ws, &["rev-parse", "HEAD"])
}

/// Commits what `change` does to the workspace on a new branch `branch` and pushes it; the
/// commit.
fn branch_with(ws: &Path, origin: &Path, branch: &str, change: impl FnOnce(&Path)) -> String {
    git(ws, &["checkout", "-q", "-b", branch]);
    change(ws);
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-q", "-m", branch]);
    git(ws, &["push", "-q", origin.to_str().unwrap(), branch]);
    git(ws, &["rev-parse", "HEAD"])
}

/// A second product, reading the first: `mesh new` as a team would.
fn add_daily(ws: &Path) {
    let out = mesh(
        ws,
        &[
            "new",
            "product",
            "orders_daily",
            "--domain",
            "ecommerce",
            "--type",
            "aggregate",
            "--owner",
            "ecommerce-orders",
            "--input",
            "ecommerce.orders",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// A contract that no longer parses.
fn break_contract(ws: &Path) {
    let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap();
    fs::write(&contract, text.replacen("schema:", "schema: [", 1)).unwrap();
}

fn results(runs: &BTreeMap<String, JobRun>) -> Vec<String> {
    runs.iter()
        .map(|(name, r)| format!("{name}={}", r.result))
        .collect()
}

// --- The tests ---------------------------------------------------------------------------------

#[test]
fn the_generated_workflow_runs_on_pull_requests_and_main() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("repo");
    fs::create_dir_all(&ws).unwrap();
    two_domains(&ws, None, &[]);
    // `mesh new` wrote the one workflow at the workspace root, none in the product folder.
    assert!(ws.join(".github/workflows/mesh.yml").is_file());
    assert!(!ws.join("ecommerce/orders/.github").exists());
    fs::create_dir_all(ws.join("platform/domains")).unwrap();
    fs::write(
        ws.join("platform/global.yaml"),
        "kind: Platform\nadmins: [ci]\n",
    )
    .unwrap();
    fs::write(
        ws.join("platform/domains/ecommerce.yaml"),
        "kind: Domain\nname: ecommerce\ndescription: Orders and payments.\n",
    )
    .unwrap();
    let out = mesh(&ws, &["token", "create", "ci", "--role", "admin"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    let server = crate::serve(&ws, &[]);

    // The repository, and the remote every checkout clones.
    let origin = tmp.path().join("origin.git");
    let first = repository(&ws, &origin);
    let push = |branch: &str| git(&ws, &["push", "-q", origin.to_str().unwrap(), branch]);

    let mesh_url = format!("file://{}", env!("CARGO_BIN_EXE_mesh"));
    let runner = |vars: Value, scratch: &str| Runner {
        workflow: workflow_json(&ws),
        origin: &origin,
        vars,
        secrets: json!({"MESH_TOKEN": token}),
        path: path_without_mesh(),
        scratch: tmp.path().join(scratch),
    };
    let vars = json!({"MESH_SERVER": server.url, "MESH_URL": mesh_url});
    let as_ci = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", server.url.as_str(), "--token", token.as_str()]);
        mesh(&ws, &all)
    };

    // The first push to main: every product is checked, the plan applied, the product run.
    let runs = runner(vars.clone(), "push-1").run(&Event {
        name: "push",
        git_ref: "refs/heads/main".into(),
        sha: first.clone(),
        payload: json!({"before": "0000000000000000000000000000000000000000", "after": first}),
    });
    assert_eq!(
        results(&runs),
        ["changes=success", "platform=success", "product=success"],
        "{}",
        show(&runs)
    );
    assert_eq!(
        runs["product"].matrix,
        [json!({"product": "ecommerce/orders"})]
    );
    assert!(
        runs["platform"].ran.contains(&"Apply".to_owned()),
        "{}",
        show(&runs)
    );
    assert!(!runs["platform"].ran.contains(&"Plan".to_owned()));
    assert!(
        runs["platform"].summary.contains("## mesh apply"),
        "{}",
        runs["platform"].summary
    );
    let shown = as_ci(&["runs", "ecommerce.orders", "--output", "json"]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert!(
        stdout(&shown).contains("\"succeeded\""),
        "{}",
        stdout(&shown)
    );

    // A pull request adding a product: only it is checked; the plan is the job summary and
    // nothing reaches the catalog.
    let second = branch_with(&ws, &origin, "daily", add_daily);
    let pr = Event {
        name: "pull_request",
        git_ref: "refs/pull/1/merge".into(),
        sha: second.clone(),
        payload: json!({"pull_request": {"base": {"sha": first}, "head": {"sha": second}}}),
    };
    let runs = runner(vars.clone(), "pr-1").run(&pr);
    assert_eq!(
        results(&runs),
        ["changes=success", "platform=success", "product=success"],
        "{}",
        show(&runs)
    );
    assert_eq!(
        runs["product"].matrix,
        [json!({"product": "ecommerce/orders_daily"})]
    );
    let summary = &runs["platform"].summary;
    assert!(summary.contains("## mesh plan"), "{}", show(&runs));
    assert!(summary.contains("ecommerce.orders_daily"), "{summary}");
    assert!(!runs["platform"].ran.contains(&"Apply".to_owned()));
    let shown = as_ci(&["show", "ecommerce.orders_daily"]);
    assert_ne!(
        code(&shown),
        0,
        "a pull request applied: {}",
        stdout(&shown)
    );

    // Merged: the new product is published and run (reading the first one's output).
    git(&ws, &["checkout", "-q", "main"]);
    git(&ws, &["merge", "-q", "--ff-only", "daily"]);
    push("main");
    let runs = runner(vars.clone(), "push-2").run(&Event {
        name: "push",
        git_ref: "refs/heads/main".into(),
        sha: second.clone(),
        payload: json!({"before": first, "after": second}),
    });
    assert_eq!(
        results(&runs),
        ["changes=success", "platform=success", "product=success"],
        "{}",
        show(&runs)
    );
    assert_eq!(
        runs["product"].matrix,
        [json!({"product": "ecommerce/orders_daily"})]
    );
    let shown = as_ci(&["runs", "ecommerce.orders_daily", "--output", "json"]);
    assert_eq!(code(&shown), 0, "{}{}", stdout(&shown), stderr(&shown));
    assert!(stdout(&shown).contains("\"succeeded\""), "{}", show(&runs));
    // Only what changed ran: ecommerce.orders has its one run of the first push.
    let shown = as_ci(&["runs", "ecommerce.orders", "--output", "json"]);
    assert_eq!(
        stdout(&shown).matches("\"succeeded\"").count(),
        1,
        "{}",
        stdout(&shown)
    );

    // A careless pull request: a contract that does not parse. Its product's check fails with
    // where, and nothing is planned or applied after it.
    let third = branch_with(&ws, &origin, "broken", break_contract);
    let runs = runner(vars.clone(), "pr-2").run(&Event {
        name: "pull_request",
        git_ref: "refs/pull/2/merge".into(),
        sha: third.clone(),
        payload: json!({"pull_request": {"base": {"sha": second}, "head": {"sha": third}}}),
    });
    assert_eq!(
        results(&runs),
        ["changes=success", "platform=skipped", "product=failure"],
        "{}",
        show(&runs)
    );
    assert!(
        runs["product"].log.contains("orders.odcs.yaml:"),
        "the failure says where: {}",
        show(&runs)
    );

    // A contract's promise changed without its monitoring files: the check says to regenerate.
    git(&ws, &["checkout", "-q", "main"]);
    let fourth = branch_with(&ws, &origin, "stale", |ws| {
        let contract = ws.join("ecommerce/orders/contracts/orders.odcs.yaml");
        let text = fs::read_to_string(&contract).unwrap();
        let changed = text.replacen("    value: 99.5\n", "    value: 99.9\n", 1);
        assert_ne!(changed, text);
        fs::write(&contract, changed).unwrap();
    });
    let runs = runner(vars.clone(), "pr-3").run(&Event {
        name: "pull_request",
        git_ref: "refs/pull/3/merge".into(),
        sha: fourth.clone(),
        payload: json!({"pull_request": {"base": {"sha": second}, "head": {"sha": fourth}}}),
    });
    assert_eq!(runs["product"].result, "failure", "{}", show(&runs));
    assert!(
        runs["product"].log.contains("monitoring/ is out of step"),
        "{}",
        show(&runs)
    );

    // A repository without its settings: the workflow says which one is missing.
    let runs = runner(json!({"MESH_URL": mesh_url}), "push-3").run(&Event {
        name: "push",
        git_ref: "refs/heads/main".into(),
        sha: second.clone(),
        payload: json!({"before": first, "after": second}),
    });
    assert_eq!(runs["platform"].result, "failure", "{}", show(&runs));
    assert!(
        runs["platform"]
            .log
            .contains("set the repository variable MESH_SERVER"),
        "{}",
        show(&runs)
    );
    let runs = runner(json!({}), "push-4").run(&Event {
        name: "push",
        git_ref: "refs/heads/main".into(),
        sha: second,
        payload: json!({"before": first, "after": "x"}),
    });
    assert_eq!(runs["changes"].result, "failure", "{}", show(&runs));
    assert!(
        runs["changes"]
            .log
            .contains("set the repository variable MESH_URL"),
        "{}",
        show(&runs)
    );
}

#[test]
fn the_generated_workflow_passes_the_workflow_schema_and_shellcheck() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let file = ws.join(".github/workflows/mesh.yml");
    let text = fs::read_to_string(&file).unwrap();

    // `mesh ci workflow` leaves the generated file as it is, and a team's own alone.
    let again = mesh(ws, &["ci", "workflow"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));
    fs::write(&file, "name: ours\n").unwrap();
    let kept = mesh(ws, &["ci", "workflow"]);
    assert_eq!(code(&kept), 1, "{}", stderr(&kept));
    assert_eq!(fs::read_to_string(&file).unwrap(), "name: ours\n");
    let forced = mesh(ws, &["ci", "workflow", "--force"]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(fs::read_to_string(&file).unwrap(), text);

    // shellcheck on every `run:` script, its expressions standing in as words.
    match Command::new("shellcheck").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let workflow = workflow_json(ws);
            let mut scripts = 0;
            for job in workflow["jobs"].as_object().unwrap().values() {
                for step in job["steps"].as_array().unwrap() {
                    let Some(script) = step["run"].as_str() else {
                        continue;
                    };
                    scripts += 1;
                    let mut plain = String::from("#!/bin/bash\nset -eo pipefail\n");
                    let mut rest = script;
                    while let Some(start) = rest.find("${{") {
                        let end = rest[start..].find("}}").unwrap() + start;
                        plain.push_str(&rest[..start]);
                        plain.push_str("expression");
                        rest = &rest[end + 2..];
                    }
                    plain.push_str(rest);
                    let path = tmp.path().join(format!("script-{scripts}.sh"));
                    fs::write(&path, &plain).unwrap();
                    let out = Command::new("shellcheck")
                        .args(["-s", "bash", "-e", "SC2016"])
                        .arg(&path)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "shellcheck on\n{plain}\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
            assert!(scripts >= 6, "{scripts} scripts");
        }
        _ => mesh_testkit::skip("shellcheck", "apt-get install shellcheck"),
    }

    // The workflow schema (SchemaStore's github-workflow.json, vendored by check-jsonschema).
    let checker =
        std::env::var("MESH_CHECK_JSONSCHEMA").unwrap_or_else(|_| "check-jsonschema".into());
    let check = |file: &Path| {
        Command::new(&checker)
            .args(["--builtin-schema", "vendor.github-workflows", "-o", "text"])
            .arg(file)
            .output()
    };
    let out = match check(&file) {
        Ok(out) => out,
        Err(_) => {
            mesh_testkit::skip(
                "check-jsonschema (MESH_CHECK_JSONSCHEMA)",
                "pip install check-jsonschema, or set MESH_CHECK_JSONSCHEMA to its path",
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "the workflow schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The checker finds problems (it is not a check that cannot fail): a misspelled key.
    let bad = tmp.path().join("bad.yml");
    fs::write(&bad, text.replacen("working-directory:", "workdir:", 1)).unwrap();
    let out = check(&bad).unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// --- GitLab CI ---------------------------------------------------------------------------------

/// A small GitLab CI runner: `workflow:rules`, stages in order, each job's `rules:` (`if:` with
/// `$VAR`, `"text"`, `==`, `!=`, `&&`, `||`), `default.before_script` and `script` in one
/// `bash -eo pipefail` session in a fresh clone at the commit, the predefined variables a
/// pipeline has. A key it does not know that would change what runs fails the test. It does not
/// model protected or environment-scoped variables, caches or the image (mesh and the tools come
/// from this machine).
struct GitLab<'a> {
    pipeline: Value,
    origin: &'a Path,
    /// The project's CI/CD variables (they win over the file's `variables:`).
    variables: BTreeMap<String, String>,
    path: String,
    scratch: PathBuf,
}

/// What a pipeline is for: its source, commit, the commit before (push) or the merge
/// request's base.
struct Pipeline {
    source: &'static str,
    sha: String,
    before: String,
    base: Option<String>,
}

impl GitLab<'_> {
    fn run(&self, p: &Pipeline) -> BTreeMap<String, JobRun> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in self.pipeline["variables"].as_object().into_iter().flatten() {
            vars.insert(k.clone(), as_text(v));
        }
        vars.extend(self.variables.clone());
        vars.insert("CI".into(), "true".into());
        vars.insert("GITLAB_CI".into(), "true".into());
        vars.insert("CI_PIPELINE_SOURCE".into(), p.source.into());
        vars.insert("CI_DEFAULT_BRANCH".into(), "main".into());
        vars.insert("CI_COMMIT_SHA".into(), p.sha.clone());
        vars.insert("CI_COMMIT_BEFORE_SHA".into(), p.before.clone());
        if p.source == "push" {
            vars.insert("CI_COMMIT_BRANCH".into(), "main".into());
        }
        if let Some(base) = &p.base {
            vars.insert("CI_MERGE_REQUEST_DIFF_BASE_SHA".into(), base.clone());
        }
        let mut done = BTreeMap::new();
        if let Some(rules) = self.pipeline.pointer("/workflow/rules")
            && !rules_match(rules, &vars)
        {
            return done;
        }
        let known = [
            "stage",
            "script",
            "before_script",
            "rules",
            "image",
            "interruptible",
            "environment",
            "artifacts",
            "resource_group",
            "variables",
        ];
        for key in self.pipeline["default"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                ["image", "cache", "before_script", "interruptible"].contains(&key.as_str()),
                "default: the runner cannot run `{key}:`"
            );
        }
        let mut failed = false;
        for stage in self.pipeline["stages"].as_array().expect("stages") {
            for (name, job) in self.pipeline.as_object().unwrap() {
                if job["stage"] != *stage {
                    continue;
                }
                for key in job.as_object().unwrap().keys() {
                    assert!(
                        known.contains(&key.as_str()),
                        "job {name}: the runner cannot run `{key}:`"
                    );
                }
                let wanted = job.get("rules").is_none_or(|r| rules_match(r, &vars));
                if !wanted || failed {
                    done.insert(
                        name.clone(),
                        JobRun {
                            result: "skipped".into(),
                            ..JobRun::default()
                        },
                    );
                    continue;
                }
                let run = self.job(name, job, &vars);
                failed |= run.result == "failure";
                done.insert(name.clone(), run);
            }
        }
        done
    }

    fn job(&self, name: &str, job: &Value, vars: &BTreeMap<String, String>) -> JobRun {
        let dir = self.scratch.join(name);
        let project = dir.join("project");
        fs::create_dir_all(&project).unwrap();
        let depth = vars.get("GIT_DEPTH").map_or("20".to_owned(), Clone::clone);
        let url = format!("file://{}", self.origin.display());
        git(&project, &["init", "-q"]);
        if depth == "0" {
            git(
                &project,
                &["fetch", "-q", &url, "+refs/heads/*:refs/remotes/origin/*"],
            );
        } else {
            git(
                &project,
                &[
                    "fetch",
                    "-q",
                    &format!("--depth={depth}"),
                    &url,
                    &vars["CI_COMMIT_SHA"],
                ],
            );
        }
        git(
            &project,
            &["checkout", "-q", "--detach", &vars["CI_COMMIT_SHA"]],
        );
        let lines = |v: &Value| -> Vec<String> {
            match v {
                Value::Null => Vec::new(),
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(|l| l.as_str().unwrap().to_owned()).collect(),
                other => panic!("{name}: a script is a list: {other}"),
            }
        };
        let before = job
            .get("before_script")
            .or(self.pipeline.pointer("/default/before_script"))
            .map(&lines)
            .unwrap_or_default();
        let mut script = String::from("set -eo pipefail\n");
        for l in before.iter().chain(lines(&job["script"]).iter()) {
            script.push_str(l);
            script.push('\n');
        }
        fs::write(dir.join("script.sh"), &script).unwrap();
        let mut env = vars.clone();
        for (k, v) in job["variables"].as_object().into_iter().flatten() {
            env.insert(k.clone(), as_text(v));
        }
        env.insert("CI_PROJECT_DIR".into(), project.display().to_string());
        env.insert("CI_JOB_NAME".into(), name.into());
        let out = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .arg(dir.join("script.sh"))
            .current_dir(&project)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &dir)
            .envs(&env)
            .output()
            .unwrap();
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        let artifact = dir.join("artifacts");
        for path in job
            .pointer("/artifacts/paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let from = project.join(path.as_str().unwrap());
            if from.is_file() {
                fs::create_dir_all(&artifact).unwrap();
                fs::copy(&from, artifact.join(from.file_name().unwrap())).unwrap();
            }
        }
        JobRun {
            result: if out.status.success() {
                "success"
            } else {
                "failure"
            }
            .into(),
            summary: fs::read_to_string(artifact.join("plan.txt")).unwrap_or_default(),
            log,
            ..JobRun::default()
        }
    }
}

/// `rules:`: the first whose `if:` holds decides (no `when:` here means it runs).
fn rules_match(rules: &Value, vars: &BTreeMap<String, String>) -> bool {
    for rule in rules.as_array().expect("rules are a list") {
        for key in rule.as_object().unwrap().keys() {
            assert_eq!(key, "if", "the runner cannot run a rule's `{key}:`");
        }
        if gitlab_if(rule["if"].as_str().unwrap(), vars) {
            return true;
        }
    }
    false
}

/// GitLab's `if:` expressions: `$VAR` (defined and not empty), `"text"`, `==`, `!=`, `&&` and
/// `||` (no parentheses: a workflow that needs them fails here).
fn gitlab_if(text: &str, vars: &BTreeMap<String, String>) -> bool {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '$' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            tokens.push(vars.get(&name).cloned());
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..].iter().position(|x| *x == c).unwrap() + i + 1;
            tokens.push(Some(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            assert!(
                ["==", "!=", "&&", "||"].contains(&two.as_str()),
                "the runner cannot read `{text}`"
            );
            tokens.push(Some(format!("\u{0}{two}")));
            i += 2;
        }
    }
    // Operands and operators alternate; && binds tighter than ||.
    fn op(t: &Option<String>) -> Option<&str> {
        t.as_deref().and_then(|s| s.strip_prefix('\u{0}'))
    }
    let mut or = false;
    let mut and = true;
    let mut k = 0;
    while k < tokens.len() {
        let left = &tokens[k];
        let (value, next) = match tokens.get(k + 1).and_then(op) {
            Some(cmp @ ("==" | "!=")) => {
                let right = &tokens[k + 2];
                ((left == right) == (cmp == "=="), k + 3)
            }
            _ => (left.as_deref().is_some_and(|s| !s.is_empty()), k + 1),
        };
        and &= value;
        match tokens.get(next).and_then(op) {
            Some("&&") => {}
            Some("||") => {
                or |= and;
                and = true;
            }
            None => {}
            Some(other) => panic!("the runner cannot read `{other}` in `{text}`"),
        }
        k = next + 1;
    }
    or || and
}

#[test]
fn the_gitlab_pipeline_runs_on_merge_requests_and_the_default_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("repo");
    fs::create_dir_all(&ws).unwrap();
    two_domains(&ws, None, &[]);
    let out = mesh(&ws, &["ci", "workflow", "--gitlab"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let file = ws.join(".gitlab-ci.yml");
    let out = mesh(&ws, &["token", "create", "ci", "--role", "admin"]);
    let token = stdout(&out).trim().to_owned();
    let server = crate::serve(&ws, &[]);
    let origin = tmp.path().join("origin.git");
    let first = repository(&ws, &origin);
    let pipeline = {
        let parsed = mesh_model::yaml::parse(&fs::read_to_string(&file).unwrap());
        parsed.root.unwrap().to_json()
    };
    let runner = |scratch: &str| GitLab {
        pipeline: pipeline.clone(),
        origin: &origin,
        variables: [
            ("MESH_SERVER", server.url.as_str()),
            ("MESH_TOKEN", token.as_str()),
            (
                "MESH_URL",
                &format!("file://{}", env!("CARGO_BIN_EXE_mesh")),
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        path: path_without_mesh(),
        scratch: tmp.path().join(scratch),
    };
    let zeros = "0000000000000000000000000000000000000000".to_owned();

    // The first push: checked, applied, run.
    let runs = runner("push-1").run(&Pipeline {
        source: "push",
        sha: first.clone(),
        before: zeros.clone(),
        base: None,
    });
    assert_eq!(
        results(&runs),
        ["apply=success", "check=success", "plan=skipped"],
        "{}",
        show(&runs)
    );
    let ran = mesh(
        &ws,
        &[
            "runs",
            "ecommerce.orders",
            "--output",
            "json",
            "--server",
            &server.url,
            "--token",
            &token,
        ],
    );
    assert!(stdout(&ran).contains("\"succeeded\""), "{}", show(&runs));

    // A merge request adding a product: checked and planned (the plan is the artifact), not
    // applied.
    let second = branch_with(&ws, &origin, "daily", add_daily);
    let runs = runner("mr-1").run(&Pipeline {
        source: "merge_request_event",
        sha: second.clone(),
        before: zeros.clone(),
        base: Some(first.clone()),
    });
    assert_eq!(
        results(&runs),
        ["apply=skipped", "check=success", "plan=success"],
        "{}",
        show(&runs)
    );
    assert!(
        runs["check"].log.contains("== ecommerce/orders_daily"),
        "{}",
        show(&runs)
    );
    assert!(
        !runs["check"].log.contains("== ecommerce/orders\n"),
        "only the changed product: {}",
        show(&runs)
    );
    assert!(
        runs["plan"].summary.contains("ecommerce.orders_daily"),
        "{}",
        show(&runs)
    );
    // A pipeline for a push to another branch does not run at all.
    let none = runner("push-branch").run(&Pipeline {
        source: "web",
        sha: second.clone(),
        before: first.clone(),
        base: None,
    });
    assert!(none.is_empty());

    // Merged: applied and the new product run.
    git(&ws, &["checkout", "-q", "main"]);
    git(&ws, &["merge", "-q", "--ff-only", "daily"]);
    git(&ws, &["push", "-q", origin.to_str().unwrap(), "main"]);
    let runs = runner("push-2").run(&Pipeline {
        source: "push",
        sha: second.clone(),
        before: first.clone(),
        base: None,
    });
    assert_eq!(
        results(&runs),
        ["apply=success", "check=success", "plan=skipped"],
        "{}",
        show(&runs)
    );
    let ran = mesh(
        &ws,
        &[
            "runs",
            "ecommerce.orders_daily",
            "--output",
            "json",
            "--server",
            &server.url,
            "--token",
            &token,
        ],
    );
    assert!(stdout(&ran).contains("\"succeeded\""), "{}", show(&runs));

    // A broken contract fails the check; nothing is planned.
    let third = branch_with(&ws, &origin, "broken", break_contract);
    let runs = runner("mr-2").run(&Pipeline {
        source: "merge_request_event",
        sha: third,
        before: zeros,
        base: Some(second),
    });
    assert_eq!(
        results(&runs),
        ["apply=skipped", "check=failure", "plan=skipped"],
        "{}",
        show(&runs)
    );
    assert!(
        runs["check"].log.contains("orders.odcs.yaml:"),
        "{}",
        show(&runs)
    );

    // shellcheck on each job's script, as the runner assembles it.
    if Command::new("shellcheck").arg("--version").output().is_ok() {
        for job in ["check", "plan", "apply"] {
            let mut script = String::from("#!/bin/bash\nset -eo pipefail\n");
            for part in ["/default/before_script", &format!("/{job}/script")] {
                for l in pipeline.pointer(part).and_then(Value::as_array).unwrap() {
                    script.push_str(l.as_str().unwrap());
                    script.push('\n');
                }
            }
            let path = tmp.path().join(format!("{job}.sh"));
            fs::write(&path, &script).unwrap();
            let out = Command::new("shellcheck")
                .args(["-s", "bash"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}\n{}", stdout(&out));
        }
    } else {
        mesh_testkit::skip("shellcheck", "apt-get install shellcheck");
    }

    // GitLab's own schema for the file (vendored by check-jsonschema).
    let checker =
        std::env::var("MESH_CHECK_JSONSCHEMA").unwrap_or_else(|_| "check-jsonschema".into());
    match Command::new(&checker)
        .args(["--builtin-schema", "vendor.gitlab-ci", "-o", "text"])
        .arg(&file)
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
            // ... which finds a misspelled key.
            let bad = tmp.path().join("bad-gitlab-ci.yml");
            let text = fs::read_to_string(&file).unwrap();
            fs::write(&bad, text.replacen("resource_group:", "resource_groop:", 1)).unwrap();
            let out = Command::new(&checker)
                .args(["--builtin-schema", "vendor.gitlab-ci", "-o", "text"])
                .arg(&bad)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{}", stdout(&out));
        }
        Err(_) => mesh_testkit::skip(
            "check-jsonschema (MESH_CHECK_JSONSCHEMA)",
            "pip install check-jsonschema, or set MESH_CHECK_JSONSCHEMA to its path",
        ),
    }
}
