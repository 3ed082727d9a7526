//! Governance as code: Rego policies evaluated in process (regorus) against a data product.
//!
//! A policy is one Rego package with `deny` and/or `warn` rules (conftest's convention), whose
//! elements are messages — strings, or objects `{"msg": ..., "path": ...}` naming where in the
//! product or contract the problem is. Its metadata comes from the `# METADATA` comment block
//! above the package (OPA's annotations): `title`, `description`, and under `custom:` the `id`,
//! `type` and `enforcement` (`block | warn | audit`).
//!
//! Policies are federated: the platform's global policies (the [standard pack](standard) and any
//! others) apply everywhere; a domain adds its own and may tighten the enforcement of a global one,
//! never weaken or replace it ([`PolicySet::load`] refuses that).
//!
//! The input is `{"product": <ODPS>, "contracts": {<port>: <ODCS>}, "context": {...}}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One policy file's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub text: String,
}

/// What a violated `deny` rule of a policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Recorded only.
    Audit,
    /// Accepted, with a warning.
    Warn,
    /// Refused.
    Block,
}

impl Enforcement {
    pub fn parse(text: &str) -> Option<Enforcement> {
        match text {
            "block" => Some(Enforcement::Block),
            "warn" => Some(Enforcement::Warn),
            "audit" => Some(Enforcement::Audit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Audit => "audit",
            Enforcement::Warn => "warn",
            Enforcement::Block => "block",
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum On {
    /// A data product and its contracts ([`input`]).
    Publish,
    /// A request for access to an output port ([`access_input`]).
    Access,
    /// An external location registered for a domain's sources ([`location_input`]).
    Location,
}

impl On {
    pub fn as_str(self) -> &'static str {
        match self {
            On::Publish => "publish",
            On::Access => "access",
            On::Location => "location",
        }
    }
}

/// Whose policy it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "scope", content = "domain")]
pub enum Scope {
    Global,
    Domain(String),
}

/// A loaded policy.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub id: String,
    pub title: String,
    pub description: String,
    /// classification, retention, access_control, quality, privacy, interoperability, other.
    #[serde(rename = "type")]
    pub kind: String,
    pub enforcement: Enforcement,
    /// What the policy judges: a product at publish (and in CI, and in audits), or an access
    /// request (METADATA `custom.on: access`).
    pub on: On,
    #[serde(flatten)]
    pub scope: Scope,
    /// The Rego package, e.g. `mesh.standard.naming`.
    pub package: String,
    pub path: String,
    #[serde(skip)]
    text: String,
}

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub policy: String,
    pub title: String,
    /// What this violation does: from the policy's enforcement for `deny`, at most warn for `warn`.
    pub enforcement: Enforcement,
    /// `deny` or `warn`.
    pub rule: String,
    pub message: String,
    /// Where, as a dotted path into the input (`contracts.orders.schema.orders.properties.email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The verdict on one input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decision {
    /// How many policies were evaluated.
    pub evaluated: usize,
    pub violations: Vec<Violation>,
}

impl Decision {
    /// Whether a blocking violation refuses the input.
    pub fn blocked(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.enforcement == Enforcement::Block)
    }

    pub fn count(&self, level: Enforcement) -> usize {
        self.violations
            .iter()
            .filter(|v| v.enforcement == level)
            .count()
    }
}

/// Why policies could not be loaded or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Rego that does not parse or compile (the message carries file:line:col).
    #[error("{path}: {message}")]
    Rego { path: String, message: String },
    #[error("{path}: {message}")]
    Metadata { path: String, message: String },
    /// A domain tried to replace or weaken a global policy.
    #[error("{0}")]
    Federation(String),
    #[error("evaluating policies: {0}")]
    Eval(String),
}

/// The largest policy file: policies are rules, not data.
pub const MAX_REGO_BYTES: usize = 256 * 1024;

/// How deep `[` and `{` may nest in a policy file. Rego's parser tries each as a literal and as
/// a comprehension, so its time doubles with every level (16 levels: seconds; 50: hours); real
/// policies nest a few.
pub const MAX_REGO_NESTING: usize = 10;

/// Refuses a policy file too big, or nested too deep, to parse in reasonable time — from its
/// characters, before the parser sees it; the error says where (`path:line:col`).
pub fn within_limits(source: &Source) -> Result<(), PolicyError> {
    let refuse = |message: String| PolicyError::Rego {
        path: source.path.clone(),
        message,
    };
    if source.text.len() > MAX_REGO_BYTES {
        return Err(refuse(format!(
            "the file is {} bytes; a policy file is at most {MAX_REGO_BYTES}",
            source.text.len()
        )));
    }
    let (mut line, mut column, mut depth) = (1, 0, 0usize);
    let mut chars = source.text.chars();
    while let Some(c) = chars.next() {
        column += 1;
        match c {
            '\n' => (line, column) = (line + 1, 0),
            // A comment, to the end of its line.
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        (line, column) = (line + 1, 0);
                        break;
                    }
                }
            }
            // A string: `"` with escapes, or a raw one between backquotes.
            '"' | '`' => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    column += 1;
                    if inner == '\n' {
                        (line, column) = (line + 1, 0);
                    }
                    if c == '"' && escaped {
                        escaped = false;
                    } else if c == '"' && inner == '\\' {
                        escaped = true;
                    } else if inner == c {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_REGO_NESTING {
                    return Err(refuse(format!(
                        "{}:{line}:{column}: `[` and `{{` nest {depth} deep here; a policy nests them at most {MAX_REGO_NESTING} deep (each level doubles the time to parse it)",
                        source.path
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The standard policy pack shipped in the binary: (file name, Rego).
pub fn standard() -> Vec<Source> {
    macro_rules! pack {
        ($($name:literal),* $(,)?) => {
            vec![$(Source {
                path: concat!("standard/", $name).to_owned(),
                text: include_str!(concat!("../policies/standard/", $name)).to_owned(),
            }),*]
        };
    }
    pack![
        "availability_min.rego",
        "breaking_change_major.rego",
        "classification_declared.rego",
        "confidential_protected.rego",
        "description_present.rego",
        "naming.rego",
        "owner_contact.rego",
        "pii_tagged.rego",
        "primary_key_quality.rego",
        "retention_limit.rego",
        "schedule_freshness.rego",
        "sla_defined.rego",
        "access_purpose.rego",
        "access_least_privilege.rego",
        "location_scheme.rego",
        "standard_test.rego",
    ]
}

/// Whether a module defines rule `name` (`deny contains ...`, `deny[msg] {`, `deny := ...`).
fn defines(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '[', ':', '=', '\t']))
    })
}

fn is_test(path: &str) -> bool {
    path.ends_with("_test.rego")
}

/// The `package` line of a Rego module.
fn package_of(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.trim().to_owned())
}

/// The `# METADATA` block before the package, as JSON.
fn metadata(source: &Source) -> Result<serde_json::Value, PolicyError> {
    let mut yaml = String::new();
    let mut inside = false;
    for line in source.text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("# METADATA") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        match trimmed.strip_prefix('#') {
            Some(rest) => {
                yaml.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                yaml.push('\n');
            }
            None => break,
        }
    }
    if yaml.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    let parsed = mesh_model::yaml::parse(&yaml);
    match parsed.root {
        Some(root) if !parsed.diagnostics.iter().any(|d| d.is_error()) => Ok(root.to_json()),
        _ => Err(PolicyError::Metadata {
            path: source.path.clone(),
            message: parsed.diagnostics.first().map_or_else(
                || "invalid METADATA block".to_owned(),
                |d| format!("METADATA: {}", d.message),
            ),
        }),
    }
}

fn policy(source: &Source, scope: Scope) -> Result<Policy, PolicyError> {
    let package = package_of(&source.text).ok_or_else(|| PolicyError::Rego {
        path: source.path.clone(),
        message: "no `package` line".into(),
    })?;
    let meta = metadata(source)?;
    let custom = &meta["custom"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let enforcement = match custom["enforcement"].as_str() {
        None => Enforcement::Block,
        Some(e) => Enforcement::parse(e).ok_or_else(|| PolicyError::Metadata {
            path: source.path.clone(),
            message: format!("enforcement `{e}` is not block, warn or audit"),
        })?,
    };
    let on = match custom["on"].as_str() {
        None | Some("publish") => On::Publish,
        Some("access") => On::Access,
        Some("location") => On::Location,
        Some(other) => {
            return Err(PolicyError::Metadata {
                path: source.path.clone(),
                message: format!("on `{other}` is not publish, access or location"),
            });
        }
    };
    let last = package.rsplit('.').next().unwrap_or(&package).to_owned();
    Ok(Policy {
        id: text(&custom["id"]).unwrap_or(last),
        title: text(&meta["title"]).unwrap_or_else(|| package.clone()),
        description: text(&meta["description"]).unwrap_or_default(),
        kind: text(&custom["type"]).unwrap_or_else(|| "other".into()),
        enforcement,
        on,
        scope,
        package,
        path: source.path.clone(),
        text: source.text.clone(),
    })
}

/// The most VM instructions one evaluation may run: a guard against a runaway policy, far above
/// what the standard pack needs for a product with hundreds of columns.
const MAX_INSTRUCTIONS: usize = 50_000_000;

/// A domain's tightening of global policies: policy id → enforcement.
pub type Overrides = BTreeMap<String, Enforcement>;

/// Loaded, checked policies, ready to evaluate.
#[derive(Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    /// The Rego test files: (package, path, text). They never join the evaluation engine; only
    /// the engine [`PolicySet::run_tests`] builds has them.
    tests: Vec<(String, String, String)>,
    engine: regorus::Engine,
    /// The policies judging products.
    publish: Judge,
    /// The policies judging access requests.
    access: Judge,
    /// The policies judging external locations.
    location: Judge,
}

/// Some policies' `deny` and `warn` behind one entry point, compiled once: one evaluation per
/// decision, shareable across threads.
#[derive(Clone)]
struct Judge {
    /// Indexes into [`PolicySet::policies`], in the order of the gathered result.
    members: Vec<usize>,
    compiled: regorus::CompiledPolicy,
    /// The same, compiled to regorus's bytecode VM.
    program: std::sync::Arc<regorus::rvm::Program>,
    /// Idle VMs with the program loaded: a VM is reused, not rebuilt, per evaluation.
    vms: std::sync::Arc<std::sync::Mutex<Vec<Worker>>>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Loads the global policies and, for a product, its domain's. A domain policy may not use a
    /// global policy's id or package (that would replace it), and an override may only make a
    /// global policy stricter.
    pub fn load(
        global: &[Source],
        domain: Option<(&str, &[Source])>,
        overrides: &Overrides,
    ) -> Result<PolicySet, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let mut policies: Vec<Policy> = Vec::new();
        let mut tests = Vec::new();
        let mut engine = regorus::Engine::new();
        let mut sources: Vec<(&Source, Scope)> =
            global.iter().map(|s| (s, Scope::Global)).collect();
        if let Some((name, files)) = domain {
            sources.extend(files.iter().map(|s| (s, Scope::Domain(name.to_owned()))));
        }
        // Every package a global file (policy or test) declares is the global set's: a domain's
        // file — whatever its name — may not add rules to it, or to a package within it.
        let owned: Vec<String> = global.iter().filter_map(|s| package_of(&s.text)).collect();
        for (source, scope) in sources {
            // Before anything parses it: what would take the parser too long is refused.
            if let Err(e) = within_limits(source) {
                errors.push(e);
                continue;
            }
            if let (Scope::Domain(_), Some(package)) = (&scope, package_of(&source.text))
                && let Some(global) = owned.iter().find(|g| {
                    **g == package
                        || package.starts_with(&format!("{g}."))
                        || g.starts_with(&format!("{package}."))
                })
            {
                errors.push(PolicyError::Federation(format!(
                    "{}: package `{package}` belongs to the global policies (`{global}`); a domain adds policies, it cannot replace one: its files, tests included, use packages of their own",
                    source.path
                )));
                continue;
            }
            // Test files are parsed here (so their errors say where), but only ever run in the
            // engine `run_tests` builds: a test file never changes what a policy decides.
            if is_test(&source.path) {
                let mut check = regorus::Engine::new();
                match check.add_policy(source.path.clone(), source.text.clone()) {
                    Ok(package) => tests.push((
                        package.trim_start_matches("data.").to_owned(),
                        source.path.clone(),
                        source.text.clone(),
                    )),
                    Err(e) => errors.push(PolicyError::Rego {
                        path: source.path.clone(),
                        message: e.to_string().trim().to_owned(),
                    }),
                }
                continue;
            }
            if let Err(e) = engine.add_policy(source.path.clone(), source.text.clone()) {
                errors.push(PolicyError::Rego {
                    path: source.path.clone(),
                    message: e.to_string().trim().to_owned(),
                });
                continue;
            }
            match policy(source, scope) {
                Ok(p) => {
                    if let Some(global) = policies
                        .iter()
                        .find(|g| g.id == p.id || g.package == p.package)
                    {
                        errors.push(PolicyError::Federation(format!(
                            "{}: policy `{}` ({}) clashes with {} `{}` from {}; a domain adds policies, it cannot replace one",
                            p.path,
                            p.id,
                            p.package,
                            if global.scope == Scope::Global { "global policy" } else { "policy" },
                            global.id,
                            global.path
                        )));
                        continue;
                    }
                    policies.push(p);
                }
                Err(e) => errors.push(e),
            }
        }
        for (id, level) in overrides {
            match policies.iter_mut().find(|p| &p.id == id) {
                None => errors.push(PolicyError::Federation(format!(
                    "override of unknown policy `{id}`"
                ))),
                Some(p) if *level < p.enforcement => errors.push(PolicyError::Federation(format!(
                    "policy `{id}` is {} globally; a domain may tighten it, not weaken it to {level}",
                    p.enforcement
                ))),
                Some(p) => p.enforcement = *level,
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // One module that gathers the rules of every policy judging the same thing, so a
        // decision is one evaluation.
        let mut gather = String::from("package mesh_decision\n\nimport rego.v1\n");
        let mut members = [Vec::new(), Vec::new(), Vec::new()];
        for (on, entry) in [
            (On::Publish, "publish"),
            (On::Access, "access"),
            (On::Location, "location"),
        ] {
            gather.push_str(&format!("\n{entry} := [\n"));
            for (i, p) in policies.iter().enumerate().filter(|(_, p)| p.on == on) {
                // Reference only the rules a policy defines: asking for `data.<package>` whole
                // would evaluate every helper rule too.
                let rule = |name: &str| {
                    if defines(&p.text, name) {
                        format!("data.{}.{name}", p.package)
                    } else {
                        "set()".to_owned()
                    }
                };
                gather.push_str(&format!("\t[{}, {}],\n", rule("deny"), rule("warn")));
                members[on as usize].push(i);
            }
            gather.push_str("]\n");
        }
        engine
            .add_policy("mesh_decision.rego".into(), gather)
            .map_err(|e| vec![PolicyError::Eval(e.to_string().trim().to_owned())])?;
        let [publish, access, location] = members;
        let publish = Judge::compile(&mut engine, publish, "data.mesh_decision.publish")?;
        let access = Judge::compile(&mut engine, access, "data.mesh_decision.access")?;
        let location = Judge::compile(&mut engine, location, "data.mesh_decision.location")?;
        Ok(PolicySet {
            policies,
            tests,
            engine,
            publish,
            access,
            location,
        })
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Evaluates every policy judging products on `input` (see [`input`]), on regorus's
    /// bytecode VM.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<Decision, PolicyError> {
        self.publish.evaluate(&self.policies, input)
    }

    /// Evaluates every policy judging access requests on `input` (see [`access_input`]).
    pub fn evaluate_access(&self, input: &serde_json::Value) -> Result<Decision, PolicyError> {
        self.access.evaluate(&self.policies, input)
    }

    /// Evaluates every policy judging external locations on `input` (see [`location_input`]).
    pub fn evaluate_location(&self, input: &serde_json::Value) -> Result<Decision, PolicyError> {
        self.location.evaluate(&self.policies, input)
    }

    /// [`PolicySet::evaluate`] on regorus's tree-walking interpreter: slower, and the reference
    /// the VM is checked against in tests.
    pub fn evaluate_with_interpreter(
        &self,
        input: &serde_json::Value,
    ) -> Result<Decision, PolicyError> {
        let result = self
            .publish
            .compiled
            .eval_with_input(Keys::default().convert(input))
            .map_err(|e| PolicyError::Eval(e.to_string().trim().to_owned()))?;
        Ok(self.publish.decision(&self.policies, &result))
    }

    /// Runs every `test_` rule of the loaded test files (`*_test.rego`) and policies, in an
    /// engine of their own: the policies plus the test files.
    pub fn run_tests(&self) -> Vec<TestResult> {
        let rule = regex::Regex::new(r"(?m)^(test_[A-Za-z0-9_]+)").expect("a constant pattern");
        let mut out = Vec::new();
        let mut engine = self.engine.clone();
        for (_, path, text) in &self.tests {
            if let Err(e) = engine.add_policy(path.clone(), text.clone()) {
                out.push(TestResult {
                    test: path.clone(),
                    outcome: Err(e.to_string().trim().to_owned()),
                });
            }
        }
        let files = self
            .tests
            .iter()
            .map(|(package, _, text)| (package.clone(), text.clone()))
            .chain(
                self.policies
                    .iter()
                    .map(|p| (p.package.clone(), String::new())),
            );
        for (package, text) in files {
            let mut names: Vec<String> =
                rule.captures_iter(&text).map(|c| c[1].to_owned()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let outcome = match engine.eval_rule(format!("data.{package}.{name}")) {
                    Ok(regorus::Value::Bool(true)) => Ok(()),
                    Ok(other) => Err(format!(
                        "evaluated to {}",
                        other
                            .to_json_str()
                            .unwrap_or_else(|_| "undefined".into())
                            .trim()
                    )),
                    Err(e) => Err(e.to_string().trim().to_owned()),
                };
                out.push(TestResult {
                    test: format!("data.{package}.{name}"),
                    outcome,
                });
            }
        }
        out
    }
}

impl Judge {
    fn compile(
        engine: &mut regorus::Engine,
        members: Vec<usize>,
        entry: &str,
    ) -> Result<Judge, Vec<PolicyError>> {
        let failed =
            |e: &dyn fmt::Display| vec![PolicyError::Eval(e.to_string().trim().to_owned())];
        let compiled = engine
            .compile_with_entrypoint(&entry.into())
            .map_err(|e| failed(&e))?;
        let program =
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[entry])
                .map_err(|e| failed(&e))?;
        Ok(Judge {
            members,
            compiled,
            program,
            vms: Default::default(),
        })
    }

    fn evaluate(
        &self,
        policies: &[Policy],
        input: &serde_json::Value,
    ) -> Result<Decision, PolicyError> {
        let idle = self.vms.lock().ok().and_then(|mut vms| vms.pop());
        let mut worker = idle.unwrap_or_else(|| {
            let mut vm = regorus::rvm::RegoVM::new();
            vm.load_program(std::sync::Arc::clone(&self.program));
            vm.set_max_instructions(MAX_INSTRUCTIONS);
            Worker {
                vm,
                keys: Keys::default(),
            }
        });
        let value = worker.keys.convert(input);
        worker.vm.set_input(value);
        let result = worker.vm.execute();
        // Drop the input now rather than while the VM sits idle.
        worker.vm.set_input(regorus::Value::Null);
        if let Ok(mut vms) = self.vms.lock() {
            vms.push(worker);
        }
        let result = result.map_err(|e| PolicyError::Eval(e.to_string().trim().to_owned()))?;
        Ok(self.decision(policies, &result))
    }

    /// The decision from the gathered `[[deny, warn], ...]` of the judge's policies.
    fn decision(&self, policies: &[Policy], result: &regorus::Value) -> Decision {
        let mut decision = Decision {
            evaluated: self.members.len(),
            violations: Vec::new(),
        };
        let per_policy: Vec<&regorus::Value> = match result {
            regorus::Value::Array(items) => items.iter().collect(),
            _ => Vec::new(),
        };
        let members = self.members.iter().filter_map(|&i| policies.get(i));
        for (policy, rules) in members.zip(per_policy) {
            for (i, rule) in ["deny", "warn"].into_iter().enumerate() {
                let value = match rules {
                    regorus::Value::Array(pair) => pair
                        .iter()
                        .nth(i)
                        .cloned()
                        .unwrap_or(regorus::Value::Undefined),
                    _ => regorus::Value::Undefined,
                };
                let enforcement = match rule {
                    "deny" => policy.enforcement,
                    _ => policy.enforcement.min(Enforcement::Warn),
                };
                for (message, path) in messages(&value) {
                    decision.violations.push(Violation {
                        policy: policy.id.clone(),
                        title: policy.title.clone(),
                        enforcement,
                        rule: rule.to_owned(),
                        message,
                        path,
                    });
                }
            }
        }
        decision.violations.sort_by(|a, b| {
            b.enforcement
                .cmp(&a.enforcement)
                .then(a.policy.cmp(&b.policy))
                .then(a.message.cmp(&b.message))
        });
        decision
    }
}

/// One Rego unit test and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub test: String,
    pub outcome: Result<(), String>,
}

/// A VM with the program loaded, and the object keys it has seen.
struct Worker {
    vm: regorus::rvm::RegoVM,
    keys: Keys,
}

/// Object keys, and short string values, as Rego strings kept across evaluations: products
/// repeat the same few hundred keys (`name`, `logicalType` ...) and many values (`string`,
/// `internal`, `required` ...), and sharing one allocation for each makes building the input
/// about twice as fast.
#[derive(Default)]
struct Keys(std::collections::HashMap<String, regorus::Value, Fnv>);

/// FNV-1a: keys are short, and SipHash's defence against crafted keys is not needed for a
/// bounded cache of what the catalog already accepted.
#[derive(Default, Clone, Copy)]
struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;

    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Keys {
    /// Strings beyond this many are not remembered.
    const LIMIT: usize = 4096;
    /// Longer string values are data (descriptions, ids), not worth remembering.
    const SHORT: usize = 24;

    fn key(&mut self, key: &str) -> regorus::Value {
        if let Some(value) = self.0.get(key) {
            return value.clone();
        }
        let value = regorus::Value::from(key);
        if self.0.len() < Self::LIMIT {
            self.0.insert(key.to_owned(), value.clone());
        }
        value
    }

    /// `value` as a Rego value, built directly: going through serde (`Value::from`) costs a
    /// deep clone and a deserializer pass.
    fn convert(&mut self, value: &serde_json::Value) -> regorus::Value {
        use serde_json::Value as J;
        match value {
            J::Null => regorus::Value::Null,
            J::Bool(b) => regorus::Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => regorus::Value::from(i),
                (None, Some(u), _) => regorus::Value::from(u),
                (None, None, Some(f)) => regorus::Value::from(f),
                (None, None, None) => regorus::Value::Undefined,
            },
            J::String(s) if s.len() <= Self::SHORT => self.key(s),
            J::String(s) => regorus::Value::from(s.as_str()),
            J::Array(items) => {
                regorus::Value::from(items.iter().map(|v| self.convert(v)).collect::<Vec<_>>())
            }
            J::Object(map) => regorus::Value::from(
                map.iter()
                    .map(|(k, v)| (self.key(k), self.convert(v)))
                    .collect::<BTreeMap<_, _>>(),
            ),
        }
    }
}

/// The messages of a `deny`/`warn` set: strings, or objects with `msg` and `path`.
fn messages(value: &regorus::Value) -> Vec<(String, Option<String>)> {
    let items: Vec<&regorus::Value> = match value {
        regorus::Value::Set(set) => set.iter().collect(),
        regorus::Value::Array(items) => items.iter().collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|item| match item {
            regorus::Value::String(s) => (s.to_string(), None),
            other => {
                let json: serde_json::Value = other
                    .to_json_str()
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let message = json["msg"]
                    .as_str()
                    .map_or_else(|| json.to_string(), str::to_owned);
                (message, json["path"].as_str().map(str::to_owned))
            }
        })
        .collect()
}

/// The input of the policies judging access requests (`custom.on: access`):
/// `{request: {requester, consumer, product, port, major, purpose, columns, days}, context:
/// {domain, columns: [{name, classification}], asked, sensitive, approvers, second_approvers}}`.
/// `request.columns` empty means every column; `context.asked` lists them either way, and
/// `context.sensitive` those classified confidential or restricted.
pub fn access_input(request: serde_json::Value, context: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "request": request, "context": context })
}

/// The input of the policies judging external locations (`custom.on: location`):
/// `{location: {name, url, scheme, domain}, context: {storage}}`, `context.storage` being the
/// platform's managed storage (never a location).
pub fn location_input(
    location: serde_json::Value,
    context: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({ "location": location, "context": context })
}

/// The input policies see: the descriptor, each output port's contract by port name (matched
/// through `contractId`), and the context (previous version, change report, deprecation ...).
pub fn input(
    product: &serde_json::Value,
    contracts: &[serde_json::Value],
    context: serde_json::Value,
) -> serde_json::Value {
    let mut by_port = serde_json::Map::new();
    for port in product["outputPorts"].as_array().into_iter().flatten() {
        let (Some(name), Some(id)) = (port["name"].as_str(), port["contractId"].as_str()) else {
            continue;
        };
        if let Some(contract) = contracts.iter().find(|c| c["id"] == id) {
            by_port.insert(name.to_owned(), contract.clone());
        }
    }
    serde_json::json!({
        "product": product,
        "contracts": by_port,
        "schedule": schedule_facts(product),
        "context": context,
    })
}

/// What a product's `schedule` property means for policies: its cron, time zone, whether it
/// also runs on upstream changes, and `max_interval_seconds`, the longest gap between two cron
/// slots from 2026-01-01 (at most 3,000 of them within 400 days, so weekends, month ends and
/// daylight-saving changes count);
/// null without a readable schedule.
pub fn schedule_facts(product: &serde_json::Value) -> serde_json::Value {
    let Some(Ok(schedule)) =
        mesh_model::schedule::property_json(product).map(mesh_model::schedule::Schedule::from_json)
    else {
        return serde_json::Value::Null;
    };
    let from =
        chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let until = from + chrono::Duration::days(400);
    let mut gap: Option<i64> = None;
    if let Some(mut at) = schedule.next_after(from) {
        // 3,000 slots: two days of a cron every minute, ten of one every five (whose gaps repeat
        // daily), four months of an hourly one (past March's daylight-saving change), years of a
        // daily one.
        for _ in 0..3_000 {
            let Some(next) = schedule.next_after(at).filter(|n| *n <= until) else {
                break;
            };
            gap = gap.max(Some((next - at).num_seconds()));
            at = next;
        }
    }
    serde_json::json!({
        "cron": schedule.cron.as_ref().map(|c| c.as_str().to_owned()),
        "timezone": schedule.timezone.name(),
        "upstream": schedule.upstream,
        "max_interval_seconds": gap,
    })
}
