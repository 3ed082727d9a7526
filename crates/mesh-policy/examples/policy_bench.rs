//! Policy decisions per second: the full standard pack on one product, on one core.
//!
//! ```sh
//! cargo run --release -p mesh-policy --example policy_bench
//! ```

#![allow(clippy::print_stdout)]

use std::time::Instant;

use mesh_policy::{Overrides, PolicySet, standard};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/policy/compliant");
    let json = |p: &str| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(dir.join(p))?;
        Ok(mesh_model::yaml::parse(&text)
            .root
            .ok_or("invalid YAML")?
            .to_json())
    };
    let product = json("product.odps.yaml")?;
    let contract = json("contracts/orders.odcs.yaml")?;
    let input = mesh_policy::input(&product, &[contract], serde_json::json!({}));
    let t = Instant::now();
    let set =
        PolicySet::load(&standard(), None, &Overrides::new()).map_err(|e| format!("{e:?}"))?;
    let load = t.elapsed();
    let policies = set.policies().len();
    // Warm up, then measure.
    for _ in 0..200 {
        set.evaluate(&input)?;
    }
    let runs = 5_000;
    let mut times = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let decision = set.evaluate(&input)?;
        times.push(t.elapsed());
        assert!(decision.violations.is_empty());
    }
    let wall = started.elapsed().as_secs_f64();
    times.sort();
    let ms = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!("policy bench: standard pack ({policies} policies) on one product, one thread");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| load and compile the pack | {:.1} ms |",
        load.as_secs_f64() * 1e3
    );
    println!("| full-pack evaluations/s | {:.0} |", runs as f64 / wall);
    println!(
        "| policy decisions/s ({policies} per evaluation) | {:.0} |",
        (runs * policies) as f64 / wall
    );
    println!(
        "| one full-pack evaluation p50 / p95 | {:.3} / {:.3} ms |",
        ms(0.5),
        ms(0.95)
    );
    // Where the time goes: each policy alone.
    if std::env::var_os("PER_POLICY").is_some() {
        for source in standard()
            .into_iter()
            .filter(|s| !s.path.ends_with("_test.rego"))
        {
            let one = PolicySet::load(std::slice::from_ref(&source), None, &Overrides::new())
                .map_err(|e| format!("{e:?}"))?;
            let t = Instant::now();
            for _ in 0..1000 {
                one.evaluate(&input)?;
            }
            println!(
                "| {} | {:.1} µs |",
                source.path,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
