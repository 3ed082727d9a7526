//! Policy decisions per second: the full standard pack on one product, on one core.
//!
//! ```sh
//! cargo run --release -p mesh-policy --example policy_bench
//! ```
//!
//! Two products: the compliant one of `testdata/policy` (one port, four columns), and a wide one
//! made from it (four ports of 50 columns each). `INTERP=1` runs regorus's tree-walking
//! interpreter instead of its bytecode VM; `PER_POLICY=1` adds each policy's time alone.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use mesh_policy::{Overrides, PolicySet, standard};

// As in the `mesh` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/policy/compliant");
    let json = |p: &str| -> Result<serde_json::Value, Error> {
        let text = std::fs::read_to_string(dir.join(p))?;
        Ok(mesh_model::yaml::parse(&text)
            .root
            .ok_or("invalid YAML")?
            .to_json())
    };
    let product = json("product.odps.yaml")?;
    let contract = json("contracts/orders.odcs.yaml")?;
    let input = mesh_policy::input(
        &product,
        std::slice::from_ref(&contract),
        serde_json::json!({}),
    );
    let wide = wide(&product, &contract);

    let t = Instant::now();
    let set =
        PolicySet::load(&standard(), None, &Overrides::new()).map_err(|e| format!("{e:?}"))?;
    let load = t.elapsed();
    let policies = set.policies().len();
    let interpreter = std::env::var_os("INTERP").is_some();
    let evaluate = |input: &serde_json::Value| -> Result<mesh_policy::Decision, Error> {
        Ok(if interpreter {
            set.evaluate_with_interpreter(input)?
        } else {
            set.evaluate(input)?
        })
    };

    println!(
        "policy bench: standard pack ({policies} policies), one thread, {}",
        if interpreter {
            "tree-walking interpreter"
        } else {
            "bytecode VM"
        }
    );
    println!(
        "| product | full-pack evaluations/s | policy decisions/s | p50 / p95 per evaluation |"
    );
    println!("|---|---|---|---|");
    for (name, input, runs) in [
        ("compliant, 1 port × 4 columns", &input, 20_000),
        ("wide, 4 ports × 50 columns", &wide, 1_000),
    ] {
        for _ in 0..runs / 10 {
            evaluate(input)?;
        }
        let mut times = Vec::with_capacity(runs);
        let started = Instant::now();
        for _ in 0..runs {
            let t = Instant::now();
            let decision = evaluate(input)?;
            times.push(t.elapsed());
            assert!(decision.violations.is_empty(), "{:?}", decision.violations);
        }
        let wall = started.elapsed().as_secs_f64();
        times.sort();
        let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
        println!(
            "| {name} | {:.0} | {:.0} | {} / {} |",
            runs as f64 / wall,
            (runs * policies) as f64 / wall,
            micros(at(0.5)),
            micros(at(0.95)),
        );
    }
    println!(
        "load and compile the pack: {:.1} ms",
        load.as_secs_f64() * 1e3
    );

    if std::env::var_os("PER_POLICY").is_some() {
        println!("| policy alone, compliant product | per evaluation |");
        println!("|---|---|");
        for source in standard()
            .into_iter()
            .filter(|s| !s.path.ends_with("_test.rego"))
        {
            let one = PolicySet::load(std::slice::from_ref(&source), None, &Overrides::new())
                .map_err(|e| format!("{e:?}"))?;
            let t = Instant::now();
            for _ in 0..2000 {
                one.evaluate(&input)?;
            }
            println!("| {} | {} |", source.path, micros(t.elapsed() / 2000));
        }
    }
    Ok(())
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The compliant product with four output ports, each with a 50-column contract in the same style
/// (a checked key, personal columns tagged and protected, plain columns).
fn wide(product: &serde_json::Value, contract: &serde_json::Value) -> serde_json::Value {
    let mut product = product.clone();
    let mut contracts = Vec::new();
    let mut ports = Vec::new();
    for p in 0..4 {
        let port = format!("orders_{p}");
        let id = format!("sales.orders.{port}");
        let mut c = contract.clone();
        c["id"] = id.clone().into();
        let columns = &mut c["schema"][0]["properties"];
        let template = columns.as_array().cloned().unwrap_or_default();
        let mut all = template.clone();
        for i in 0..(50 - template.len()) {
            let mut column = template[3].clone();
            column["name"] = format!("measure_{i}").into();
            all.push(column);
        }
        *columns = all.into();
        contracts.push(c);
        let mut output = product["outputPorts"][0].clone();
        output["name"] = port.into();
        output["contractId"] = id.into();
        ports.push(output);
    }
    product["outputPorts"] = ports.into();
    mesh_policy::input(&product, &contracts, serde_json::json!({}))
}
