//! Fuzzing policy bundles (issue 19): whatever a domain publishes as a `.rego` file, the limits
//! check and loading finish without panicking, and a bundle that loads evaluates.

use mesh_policy::{Overrides, PolicySet, Source, within_limits};
use mesh_testkit::fuzz;

const TOKENS: &[&str] = &[
    "package mesh.x\n",
    "import rego.v1\n",
    "deny contains msg if {\n",
    "}\n",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "some x in input.a\n",
    "every x in y {",
    "not ",
    " := ",
    " == ",
    "\"",
    "`",
    "sprintf(\"%v\", [x])",
    "count(",
    "object.get(",
    "input.",
    "data.",
    "with input as ",
    "# METADATA\n# custom:\n#   id: x\n#   enforcement: block\n",
    "test_x if ",
    "default ",
    "else := ",
    ";",
    ",",
    "|",
    "\\",
    "\u{1F600}",
    "1e400",
    "-",
    "\t",
    "\n",
];

fn check(text: &str) {
    let source = Source {
        path: "policies/fuzz.rego".into(),
        text: text.to_owned(),
    };
    if within_limits(&source).is_err() {
        return;
    }
    let overrides = Overrides::default();
    for loaded in [
        PolicySet::load(std::slice::from_ref(&source), None, &overrides),
        PolicySet::load(
            &[],
            Some(("sales", std::slice::from_ref(&source))),
            &overrides,
        ),
    ]
    .into_iter()
    .flatten()
    {
        let _ = loaded.evaluate(&serde_json::json!({"product": {}, "contracts": []}));
        let _ = loaded.run_tests();
    }
}

#[test]
fn policy_bundles_never_panic() {
    fuzz::campaign("rego", fuzz::cases(300), TOKENS, check);
}
