//! `mesh demo [DIR]`: a whole mesh in a fresh folder, end to end, with the same commands a team
//! would type. Two domains: e-commerce owns the product catalog, customers and orders; analytics
//! owns user behaviour and a customer-lifetime-value product that joins orders with customers
//! through grants e-commerce gave it.
//!
//! The demo writes the products (descriptors, contracts with quality rules and SLAs, transforms),
//! generates realistic data (seeded, timestamps relative to now so the SLAs hold), publishes global
//! and domain policies, publishes every product, runs every pipeline, asks for and approves the
//! cross-domain access, records a first SLA pass, and serves the catalog.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Outcome;
use crate::output::{self, HINT, OK};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The folder to create the mesh in (it must not exist, or be empty).
    #[arg(default_value = "mesh-demo")]
    dir: PathBuf,
    /// Set everything up, then stop instead of serving.
    #[arg(long)]
    no_serve: bool,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address of the PostgreSQL wire port (psql, BI tools).
    #[arg(long, default_value = "127.0.0.1:5433", value_name = "ADDR")]
    pg_listen: SocketAddr,
    /// Seed of the generated data: the same seed gives the same rows (timestamps aside).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// The demo's files, as they are in `crates/mesh-cli/demo/`.
const FILES: &[(&str, &str)] = &[
    (
        "platform/policies/tags.rego",
        include_str!("../../demo/platform/policies/tags.rego"),
    ),
    (
        "platform/policies/tags_test.rego",
        include_str!("../../demo/platform/policies/tags_test.rego"),
    ),
    (
        "ecommerce/policies/money.rego",
        include_str!("../../demo/ecommerce/policies/money.rego"),
    ),
    (
        "ecommerce/policies/money_test.rego",
        include_str!("../../demo/ecommerce/policies/money_test.rego"),
    ),
    (
        "analytics/policies/described.rego",
        include_str!("../../demo/analytics/policies/described.rego"),
    ),
    (
        "analytics/policies/described_test.rego",
        include_str!("../../demo/analytics/policies/described_test.rego"),
    ),
    (
        "ecommerce/product_catalog/product.odps.yaml",
        include_str!("../../demo/ecommerce/product_catalog/product.odps.yaml"),
    ),
    (
        "ecommerce/product_catalog/contracts/product_catalog.odcs.yaml",
        include_str!("../../demo/ecommerce/product_catalog/contracts/product_catalog.odcs.yaml"),
    ),
    (
        "ecommerce/product_catalog/transform.sql",
        include_str!("../../demo/ecommerce/product_catalog/transform.sql"),
    ),
    (
        "ecommerce/customers/product.odps.yaml",
        include_str!("../../demo/ecommerce/customers/product.odps.yaml"),
    ),
    (
        "ecommerce/customers/contracts/customers.odcs.yaml",
        include_str!("../../demo/ecommerce/customers/contracts/customers.odcs.yaml"),
    ),
    (
        "ecommerce/customers/transform.sql",
        include_str!("../../demo/ecommerce/customers/transform.sql"),
    ),
    (
        "ecommerce/orders/product.odps.yaml",
        include_str!("../../demo/ecommerce/orders/product.odps.yaml"),
    ),
    (
        "ecommerce/orders/contracts/orders.odcs.yaml",
        include_str!("../../demo/ecommerce/orders/contracts/orders.odcs.yaml"),
    ),
    (
        "ecommerce/orders/transform.sql",
        include_str!("../../demo/ecommerce/orders/transform.sql"),
    ),
    (
        "analytics/user_behaviour/product.odps.yaml",
        include_str!("../../demo/analytics/user_behaviour/product.odps.yaml"),
    ),
    (
        "analytics/user_behaviour/contracts/user_behaviour.odcs.yaml",
        include_str!("../../demo/analytics/user_behaviour/contracts/user_behaviour.odcs.yaml"),
    ),
    (
        "analytics/user_behaviour/transform.sql",
        include_str!("../../demo/analytics/user_behaviour/transform.sql"),
    ),
    (
        "analytics/customer_lifetime_value/product.odps.yaml",
        include_str!("../../demo/analytics/customer_lifetime_value/product.odps.yaml"),
    ),
    (
        "analytics/customer_lifetime_value/contracts/customer_lifetime_value.odcs.yaml",
        include_str!(
            "../../demo/analytics/customer_lifetime_value/contracts/customer_lifetime_value.odcs.yaml"
        ),
    ),
    (
        "analytics/customer_lifetime_value/transform.sql",
        include_str!("../../demo/analytics/customer_lifetime_value/transform.sql"),
    ),
];

const SOURCES: [&str; 4] = [
    "ecommerce/product_catalog",
    "ecommerce/customers",
    "ecommerce/orders",
    "analytics/user_behaviour",
];
const DERIVED: &str = "analytics/customer_lifetime_value";

/// Written into the workspace's `.mesh/`: this folder is a demo, and `mesh demo` may rebuild it.
const MARKER: &str = ".mesh/demo";

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let dir = &args.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        if !dir.join(MARKER).is_file() {
            bail!(
                "{} is not empty and is not an earlier demo: the demo builds its mesh in a fresh folder (give another DIR)",
                dir.display()
            );
        }
        // An earlier demo: built again from scratch, with fresh data.
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the earlier demo in {}", dir.display()))?;
        say(&format!("removed the earlier demo in {}", dir.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let demo = Demo { dir: dir.clone() };
    let started = std::time::Instant::now();

    demo.step("create the workspace", &["init"], &[])?;
    demo.write(
        MARKER,
        "Made by `mesh demo`, which removes and rebuilds this workspace when run on it again.\n",
    )?;
    for (path, text) in FILES {
        demo.write(path, text)?;
    }
    let now = Utc::now();
    let data = Data::generate(args.seed, now);
    demo.write(
        "ecommerce/product_catalog/data/products.csv",
        &data.products,
    )?;
    demo.write("ecommerce/customers/data/customers.csv", &data.customers)?;
    demo.write("ecommerce/orders/data/orders.csv", &data.orders)?;
    demo.write("analytics/user_behaviour/data/events.csv", &data.events)?;
    say(&format!(
        "generated {} products, {} customers, {} order lines and {} events",
        data.counts[0], data.counts[1], data.counts[2], data.counts[3]
    ));

    demo.step(
        "publish the platform's global policies",
        &["policy", "publish", "platform/policies", "--global"],
        &[],
    )?;
    for domain in ["ecommerce", "analytics"] {
        demo.step(
            &format!("publish the {domain} domain's policies"),
            &[
                "policy",
                "publish",
                &format!("{domain}/policies"),
                "--domain",
                domain,
            ],
            &[],
        )?;
    }
    let mut publish = vec!["publish"];
    publish.extend(SOURCES);
    publish.push(DERIVED);
    demo.step("publish the five data products", &publish, &[])?;
    for source in SOURCES {
        demo.step(&format!("run {source}"), &["run", source], &[])?;
    }

    // Analytics asks for what its lifetime-value pipeline reads; e-commerce's owner approves.
    let asks: [(&str, Option<&str>, &str); 2] = [
        (
            "ecommerce.orders.orders",
            None,
            "Revenue per customer for the lifetime-value product, refreshed daily.",
        ),
        (
            "ecommerce.customers.customers",
            Some("customer_id,country,segment"),
            "Country and segment per customer for the lifetime-value product; no contact data.",
        ),
    ];
    for (port, columns, purpose) in asks {
        let mut ask = vec![
            "access",
            "request",
            port,
            "--for",
            "analytics.customer_lifetime_value",
            "--purpose",
            purpose,
            "--days",
            "90",
            "--output",
            "json",
        ];
        if let Some(columns) = columns {
            ask.extend(["--columns", columns]);
        }
        let asked = demo.step(
            &format!("ana (analytics) asks for {port}"),
            &ask,
            &[("USER", "ana")],
        )?;
        let request: serde_json::Value =
            serde_json::from_str(&asked).context("the access request's answer")?;
        let id = request["id"].as_str().unwrap_or_default().to_owned();
        demo.step(
            "olga (e-commerce) approves it",
            &["access", "approve", &id],
            &[("USER", "olga")],
        )?;
    }
    demo.step(&format!("run {DERIVED}"), &["run", DERIVED], &[])?;
    // A few reads, as consumers would, so usage and latency have something to show.
    for sql in [
        "SELECT segment, count(*) AS customers, round(sum(revenue), 2) AS revenue FROM analytics.customer_lifetime_value GROUP BY segment ORDER BY revenue DESC",
        "SELECT category, count(*) AS products FROM ecommerce.product_catalog GROUP BY category",
        "SELECT event_type, count(*) AS events FROM analytics.user_behaviour GROUP BY event_type",
    ] {
        demo.step("read through the query port", &["query", sql], &[])?;
    }
    demo.check("first SLA pass", &["sla", "check"])?;
    // Tokens for the portal's two people: the e-commerce owner and the analyst.
    let mut tokens = Vec::new();
    for (who, role, domain) in [
        ("olga", "owner", "ecommerce"),
        ("ana", "member", "analytics"),
    ] {
        let token = demo.step(
            &format!("a token for {who} ({role} of {domain})"),
            &["token", "create", who, "--role", role, "--domain", domain],
            &[],
        )?;
        tokens.push((who, domain, token.trim().to_owned()));
    }
    demo.write(
        ".mesh/demo-tokens.txt",
        &tokens
            .iter()
            .map(|(who, domain, token)| format!("{who} ({domain}): {token}\n"))
            .collect::<String>(),
    )?;
    say(&format!(
        "the mesh is ready in {} ({:.0} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    ));
    let mut out = output::stdout();
    writeln!(
        out,
        "\n  cd {}\n  mesh sla                       # service levels of every port\n  mesh lineage analytics.customer_lifetime_value --upstream\n  mesh query \"SELECT * FROM analytics.customer_lifetime_value ORDER BY revenue DESC LIMIT 5\"\n",
        dir.display()
    )?;
    out.flush()?;
    if args.no_serve {
        return Ok(Outcome::Ok);
    }
    say(&format!(
        "serving the portal at http://{}/ (anyone here may read; sign in to ask for or decide on access; Ctrl-C to stop)",
        args.listen
    ));
    let mut err = anstream::stderr();
    for (who, domain, token) in &tokens {
        writeln!(err, "  sign in as {who} ({domain}) with {token}")?;
    }
    if let Some((who, _, token)) = tokens.iter().find(|(who, _, _)| *who == "ana") {
        writeln!(
            err,
            "  psql \"postgres://{who}:{token}@{}/mesh\" -c 'SELECT * FROM analytics.customer_lifetime_value LIMIT 5'",
            args.pg_listen
        )?;
    }
    say(
        "the shop keeps trading: new orders and events land every minute, and the server runs each product on its schedule (mesh schedule ecommerce.orders)",
    );
    // The server runs the products' schedules; sources are the files of this workspace.
    let mut server = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            &args.listen.to_string(),
            "--pg-listen",
            &args.pg_listen.to_string(),
            "--open-portal",
            "--workspace",
            ".",
        ])
        .current_dir(dir)
        .spawn()
        .context("cannot start mesh serve")?;
    let mut shop = Shop::new(args.seed, &data);
    let status = loop {
        for _ in 0..60 {
            if server.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        if let Some(status) = server.try_wait()? {
            break status;
        }
        if let Err(e) = shop.trade(dir, Utc::now()) {
            output::warning(&format!("the shop could not write its data: {e}"));
        }
    };
    Ok(if status.success() {
        Outcome::Ok
    } else {
        Outcome::Error
    })
}

fn say(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{} {message}", output::paint(OK, "✓"));
}

struct Demo {
    dir: PathBuf,
}

impl Demo {
    fn write(&self, path: &str, text: &str) -> anyhow::Result<()> {
        let target = self.dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))
    }

    /// Runs `mesh ARGS` in the demo folder; its standard output, or the whole story if it failed.
    fn step(&self, what: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
        let out = self.mesh(args, env)?;
        if !out.status.success() {
            bail!(
                "{what}: `mesh {}` failed\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        say(what);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like [`Demo::step`], but findings (exit 1) are shown rather than fatal.
    fn check(&self, what: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self.mesh(args, &[])?;
        match out.status.code() {
            Some(0) => say(what),
            Some(1) => {
                say(&format!("{what}: some objectives are violated"));
                let mut err = anstream::stderr();
                writeln!(
                    err,
                    "{}",
                    output::paint(HINT, &String::from_utf8_lossy(&out.stdout))
                )?;
            }
            _ => bail!(
                "{what}: `mesh {}` failed\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        Ok(())
    }

    fn mesh(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<std::process::Output> {
        Command::new(std::env::current_exe()?)
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("cannot run mesh {}", args.join(" ")))
    }
}

/// The generated extracts, as CSV.
struct Data {
    products: String,
    customers: String,
    orders: String,
    events: String,
    counts: [usize; 4],
    /// Each product's price, by SKU number - 1.
    prices: Vec<f64>,
}

/// The shop keeps trading while the demo serves: every minute a few new order lines and
/// clickstream events are appended to the source files, and a customer and a product are
/// updated, so the scheduled runs have new data to publish and the ports stay as fresh as their
/// contracts promise.
struct Shop {
    rng: StdRng,
    prices: Vec<f64>,
    customers: usize,
    next_order: usize,
    next_event: usize,
}

impl Shop {
    fn new(seed: u64, data: &Data) -> Shop {
        Shop {
            rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
            prices: data.prices.clone(),
            customers: data.counts[1],
            next_order: data.counts[2] + 1,
            next_event: data.counts[3] + 1,
        }
    }

    /// A minute of trade: new lines appended to orders.csv and events.csv under `dir`.
    fn trade(&mut self, dir: &std::path::Path, now: DateTime<Utc>) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut orders = String::new();
        for _ in 0..self.rng.random_range(1..=4) {
            let customer = self.rng.random_range(1..=self.customers);
            let sku = self.rng.random_range(1..=self.prices.len());
            let quantity = self.rng.random_range(1..=3u32);
            let amount = self.prices[sku - 1] * f64::from(quantity);
            let at = stamp(now - Duration::seconds(self.rng.random_range(1..50)));
            orders.push_str(&format!(
                "O-{:07},C-{customer:06},SKU-{sku:05},{quantity},{amount:.2},placed,{at},{at}\n",
                self.next_order
            ));
            self.next_order += 1;
        }
        let mut events = String::new();
        for _ in 0..self.rng.random_range(5..=20) {
            let customer = format!("C-{:06}", self.rng.random_range(1..=self.customers));
            let kind =
                ["view", "view", "view", "add_to_cart", "checkout"][self.rng.random_range(0..5)];
            let sku = self.rng.random_range(1..=self.prices.len());
            let at = stamp(now - Duration::seconds(self.rng.random_range(1..60)));
            events.push_str(&format!(
                "E-{:08},{customer},{kind},SKU-{sku:05},{at}\n",
                self.next_event
            ));
            self.next_event += 1;
        }
        for (path, lines) in [
            ("ecommerce/orders/data/orders.csv", orders),
            ("analytics/user_behaviour/data/events.csv", events),
        ] {
            std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join(path))?
                .write_all(lines.as_bytes())?;
        }
        // A customer changes their details, a product its description: their `updated_at` (the
        // last column) moves to now.
        for path in [
            "ecommerce/customers/data/customers.csv",
            "ecommerce/product_catalog/data/products.csv",
        ] {
            let file = dir.join(path);
            let text = std::fs::read_to_string(&file)?;
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.len() < 2 {
                continue;
            }
            let row = self.rng.random_range(1..lines.len());
            let touched = match lines[row].rsplit_once(',') {
                Some((rest, _)) => format!("{rest},{}", stamp(now)),
                None => continue,
            };
            lines[row] = &touched;
            std::fs::write(&file, lines.join("\n") + "\n")?;
        }
        Ok(())
    }
}

const CATEGORIES: [(&str, f64, &[&str]); 7] = [
    (
        "books",
        18.0,
        &["Novel", "Cookbook", "Atlas", "Biography", "Field guide"],
    ),
    (
        "electronics",
        140.0,
        &["Headphones", "Charger", "Speaker", "Keyboard", "Camera"],
    ),
    (
        "garden",
        35.0,
        &["Hose", "Planter", "Shears", "Seed kit", "Lantern"],
    ),
    ("home", 45.0, &["Lamp", "Throw", "Mirror", "Clock", "Rug"]),
    (
        "kitchen",
        30.0,
        &["Pan", "Knife", "Kettle", "Grinder", "Board"],
    ),
    (
        "sports",
        55.0,
        &["Yoga mat", "Bottle", "Racket", "Helmet", "Backpack"],
    ),
    (
        "toys",
        25.0,
        &["Puzzle", "Kite", "Robot", "Train set", "Board game"],
    ),
];
const ADJECTIVES: [&str; 8] = [
    "Classic", "Compact", "Nordic", "Pro", "Everyday", "Deluxe", "Travel", "Eco",
];
const COUNTRIES: [(&str, u32); 8] = [
    ("DE", 30),
    ("FR", 18),
    ("NL", 12),
    ("ES", 10),
    ("IT", 10),
    ("PL", 8),
    ("SE", 6),
    ("BE", 6),
];
const FIRST: [&str; 12] = [
    "anna", "ben", "clara", "david", "eva", "felix", "greta", "hugo", "ines", "jonas", "lena",
    "marco",
];
const LAST: [&str; 10] = [
    "berg", "costa", "dubois", "fischer", "garcia", "jansen", "kowalski", "larsen", "moreau",
    "rossi",
];

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One of `choices`, by weight.
fn weighted<'a, T>(rng: &mut StdRng, choices: &'a [(T, u32)]) -> &'a T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (choice, weight) in choices {
        if pick < *weight {
            return choice;
        }
        pick -= weight;
    }
    &choices[choices.len() - 1].0
}

/// A time up to `days` before `now`, recent times likelier; never in the last minute.
fn recent(rng: &mut StdRng, now: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    let u: f64 = rng.random();
    now - Duration::seconds((u * u * days * 86_400.0) as i64 + 60)
}

impl Data {
    fn generate(seed: u64, now: DateTime<Utc>) -> Data {
        let mut rng = StdRng::seed_from_u64(seed);
        let (n_products, n_customers, n_orders, n_events) = (240, 2_000, 20_000, 30_000);

        let mut products = String::from("sku,name,category,price,updated_at\n");
        let mut prices = Vec::with_capacity(n_products);
        for i in 1..=n_products {
            let (category, base, nouns) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
            let name = format!(
                "{} {}",
                ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
                nouns[rng.random_range(0..nouns.len())].to_lowercase()
            );
            let price = (base * rng.random_range(0.4..2.5_f64) * 100.0).round() / 100.0;
            prices.push(price);
            let updated = recent(&mut rng, now, 0.8);
            products.push_str(&format!(
                "SKU-{i:05},{name},{category},{price:.2},{}\n",
                stamp(updated)
            ));
        }

        let mut customers =
            String::from("customer_id,email,country,segment,signed_up_at,updated_at\n");
        let segments = [("consumer", 80), ("business", 15), ("student", 5)];
        for i in 1..=n_customers {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let country = weighted(&mut rng, &COUNTRIES);
            let segment = weighted(&mut rng, &segments);
            let signed_up = recent(&mut rng, now, 900.0);
            let updated = recent(&mut rng, now, 0.8).max(signed_up);
            customers.push_str(&format!(
                "C-{i:06},{first}.{last}{i}@example.com,{country},{segment},{},{}\n",
                stamp(signed_up),
                stamp(updated)
            ));
        }

        let mut orders =
            String::from("order_id,customer_id,sku,quantity,amount,status,ordered_at,updated_at\n");
        let quantities = [(1_u32, 70), (2, 20), (3, 7), (4, 3)];
        for i in 1..=n_orders {
            // A few customers and products account for much of the trade.
            let customer = 1 + (rng.random::<f64>().powi(2) * n_customers as f64) as usize;
            let product = (rng.random::<f64>().powf(1.5) * n_products as f64) as usize;
            let quantity = *weighted(&mut rng, &quantities);
            let amount = prices[product.min(n_products - 1)] * f64::from(quantity);
            let ordered = recent(&mut rng, now, 365.0);
            let age = now - ordered;
            let status = if age < Duration::hours(6) {
                "placed"
            } else if age < Duration::days(3) {
                "shipped"
            } else if rng.random_bool(0.04) {
                "returned"
            } else {
                "delivered"
            };
            let changed = match status {
                "placed" => ordered,
                "shipped" => ordered + Duration::hours(6),
                _ => ordered + Duration::days(3),
            };
            let updated = changed.min(now - Duration::minutes(1));
            orders.push_str(&format!(
                "O-{i:07},C-{:06},SKU-{:05},{quantity},{amount:.2},{status},{},{}\n",
                customer.min(n_customers),
                product.min(n_products - 1) + 1,
                stamp(ordered),
                stamp(updated)
            ));
        }

        let mut events = String::from("event_id,customer_id,event_type,sku,occurred_at\n");
        let kinds = [("view", 75), ("add_to_cart", 18), ("checkout", 7)];
        for i in 1..=n_events {
            let customer = if rng.random_bool(0.7) {
                format!("C-{:06}", rng.random_range(1..=n_customers))
            } else {
                String::new()
            };
            let kind = weighted(&mut rng, &kinds);
            let product = rng.random_range(1..=n_products);
            let at = recent(&mut rng, now, 30.0);
            events.push_str(&format!(
                "E-{i:08},{customer},{kind},SKU-{product:05},{}\n",
                stamp(at)
            ));
        }
        Data {
            products,
            customers,
            orders,
            events,
            counts: [n_products, n_customers, n_orders, n_events],
            prices,
        }
    }
}

/// The demo folder's files, for tests that check them.
#[cfg(test)]
pub(crate) fn files() -> &'static [(&'static str, &'static str)] {
    FILES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_data_is_seeded_and_well_formed() {
        let now = Utc::now();
        let a = Data::generate(7, now);
        let b = Data::generate(7, now);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.orders.lines().count(), 20_001);
        for line in a.orders.lines().skip(1) {
            assert_eq!(line.split(',').count(), 8, "{line}");
        }
        // The newest order is recent enough for the contract's two-hour freshness.
        assert!(a.orders.contains(",placed,"));
    }

    #[test]
    fn the_shop_appends_fresh_rows_with_new_ids() {
        let now = Utc::now();
        let data = Data::generate(7, now);
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("ecommerce/orders/data/orders.csv", &data.orders),
            ("analytics/user_behaviour/data/events.csv", &data.events),
            ("ecommerce/customers/data/customers.csv", &data.customers),
            (
                "ecommerce/product_catalog/data/products.csv",
                &data.products,
            ),
        ] {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let mut shop = Shop::new(7, &data);
        shop.trade(dir.path(), now).unwrap();
        shop.trade(dir.path(), now).unwrap();
        let orders =
            std::fs::read_to_string(dir.path().join("ecommerce/orders/data/orders.csv")).unwrap();
        let new: Vec<&str> = orders.lines().skip(20_001).collect();
        assert!((2..=8).contains(&new.len()), "{new:?}");
        assert!(new[0].starts_with("O-0020001,"), "{}", new[0]);
        for line in &new {
            assert_eq!(line.split(',').count(), 8, "{line}");
            assert!(line.contains(",placed,"), "{line}");
        }
        let events =
            std::fs::read_to_string(dir.path().join("analytics/user_behaviour/data/events.csv"))
                .unwrap();
        assert!(events.lines().count() >= 30_001 + 10);
        // A customer and a product were updated now; nothing was added or lost.
        let customers =
            std::fs::read_to_string(dir.path().join("ecommerce/customers/data/customers.csv"))
                .unwrap();
        assert_eq!(customers.lines().count(), data.customers.lines().count());
        assert!(customers.contains(&format!(",{}\n", stamp(now))));
        let products = std::fs::read_to_string(
            dir.path()
                .join("ecommerce/product_catalog/data/products.csv"),
        )
        .unwrap();
        assert_eq!(products.lines().count(), data.products.lines().count());
        assert!(products.contains(&format!(",{}\n", stamp(now))));
    }

    #[test]
    fn every_demo_file_is_embedded_once() {
        let mut paths: Vec<&str> = files().iter().map(|(p, _)| *p).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), files().len());
    }
}
