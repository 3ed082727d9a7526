//! A readable data sheet of a contract — what the data is, its columns with their rules, quality
//! rules, service levels, servers, team and support — in Markdown or as one HTML page.

use mesh_model::odcs::{Bound, Contract, LogicalType, SchemaProperty};

use crate::Exported;

/// A block of the sheet, rendered to either format.
enum Block {
    Heading(u8, String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
}

fn rules_of(p: &SchemaProperty) -> String {
    let mut r = Vec::new();
    if p.is_primary_key() {
        r.push("primary key".to_owned());
    }
    if p.is_unique() {
        r.push("unique".to_owned());
    }
    if !p.enum_values.is_empty() {
        let values: Vec<String> = p
            .allowed_values()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        r.push(format!("one of {}", values.join(", ")));
    }
    if let Some(o) = &p.logical_type_options {
        let b = |b: &Bound| match b {
            Bound::Number(n) => n.to_string(),
            Bound::Text(t) => t.clone(),
        };
        if let Some(x) = &o.minimum {
            r.push(format!("≥ {}", b(x)));
        }
        if let Some(x) = &o.exclusive_minimum {
            r.push(format!("> {}", b(x)));
        }
        if let Some(x) = &o.maximum {
            r.push(format!("≤ {}", b(x)));
        }
        if let Some(x) = &o.exclusive_maximum {
            r.push(format!("< {}", b(x)));
        }
        if let Some(n) = o.min_length {
            r.push(format!("length ≥ {n}"));
        }
        if let Some(n) = o.max_length {
            r.push(format!("length ≤ {n}"));
        }
        if let Some(pat) = &o.pattern {
            r.push(format!("matches {pat}"));
        }
        if let Some(f) = &o.format {
            r.push(format!("format {f}"));
        }
        if let Some(d) = o.dimensions {
            r.push(format!("{d} dimensions"));
        }
    }
    for rel in &p.relationships {
        if let Some(to) = &rel.to {
            let to: Vec<&str> = to.as_slice().iter().map(|r| r.as_str()).collect();
            r.push(format!("references {}", to.join(", ")));
        }
    }
    if p.is_deprecated() {
        r.push("DEPRECATED".to_owned());
    }
    for q in &p.quality {
        r.push(format!(
            "rule: {}",
            q.description
                .clone()
                .unwrap_or_else(|| crate::sql::describe_rule(q))
        ));
    }
    r.join("; ")
}

fn type_of(p: &SchemaProperty) -> String {
    let lt = p.logical_type.map_or("", LogicalType::as_str).to_owned();
    match (&p.physical_type, p.logical_type) {
        (Some(phys), _) => format!("{lt} ({phys})"),
        (None, Some(LogicalType::Array)) => match p.items.as_deref().and_then(|i| i.logical_type) {
            Some(i) => format!("array of {i}"),
            None => lt,
        },
        _ => lt,
    }
}

fn rows(props: &[SchemaProperty], prefix: &str, out: &mut Vec<Vec<String>>) {
    for p in props {
        let name = format!("{prefix}{}", p.name());
        out.push(vec![
            name.clone(),
            type_of(p),
            if p.is_required() || p.is_primary_key() {
                "yes".into()
            } else {
                String::new()
            },
            rules_of(p),
            p.classification.clone().unwrap_or_default(),
            p.description.clone().unwrap_or_default(),
        ]);
        rows(&p.properties, &format!("{name}."), out);
        if let Some(items) = &p.items {
            rows(&items.properties, &format!("{name}[]."), out);
        }
    }
}

fn blocks(c: &Contract) -> Vec<Block> {
    let mut b = Vec::new();
    let title = c.name.clone().or_else(|| c.id.clone()).unwrap_or_default();
    b.push(Block::Heading(1, title));
    b.push(Block::Para(format!(
        "Contract `{}` version {}{}{}.",
        c.id.as_deref().unwrap_or_default(),
        c.version.as_deref().unwrap_or_default(),
        c.status
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default(),
        c.domain
            .as_deref()
            .map(|d| format!(", domain {d}"))
            .unwrap_or_default()
    )));
    if let Some(d) = &c.description {
        for (label, text) in [
            ("Purpose", &d.purpose),
            ("Usage", &d.usage),
            ("Limitations", &d.limitations),
        ] {
            if let Some(t) = text {
                b.push(Block::Para(format!("**{label}.** {t}")));
            }
        }
    }
    if let Some(ctx) = c.context.as_ref().and_then(|x| x.instructions()) {
        b.push(Block::Para(format!(
            "**For AI agents and BI tools.** {ctx}"
        )));
    }
    for o in &c.schema {
        b.push(Block::Heading(
            2,
            format!(
                "{}{}",
                o.name,
                if o.deprecated == Some(true) {
                    " (deprecated)"
                } else {
                    ""
                }
            ),
        ));
        if let Some(d) = &o.description {
            b.push(Block::Para(d.clone()));
        }
        let mut r = Vec::new();
        rows(&o.properties, "", &mut r);
        b.push(Block::Table(
            [
                "Column",
                "Type",
                "Required",
                "Rules",
                "Classification",
                "Description",
            ]
            .map(String::from)
            .to_vec(),
            r,
        ));
        if !o.quality.is_empty() {
            let r = o
                .quality
                .iter()
                .map(|q| {
                    vec![
                        crate::sql::describe_rule(q),
                        q.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            b.push(Block::Heading(3, "Quality rules".into()));
            b.push(Block::Table(vec!["Rule".into(), "Description".into()], r));
        }
    }
    if !c.sla_properties.is_empty() {
        b.push(Block::Heading(2, "Service levels".into()));
        let r = c
            .sla_properties
            .iter()
            .map(|s| {
                vec![
                    s.property.clone(),
                    format!(
                        "{}{}",
                        s.value
                            .0
                            .as_str()
                            .map_or_else(|| s.value.0.to_string(), str::to_owned),
                        s.unit
                            .as_deref()
                            .map(|u| format!(" {u}"))
                            .unwrap_or_default()
                    ),
                    s.element.clone().unwrap_or_default(),
                    s.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        b.push(Block::Table(
            ["Objective", "Promise", "Element", "Description"]
                .map(String::from)
                .to_vec(),
            r,
        ));
    }
    if !c.servers.is_empty() {
        b.push(Block::Heading(2, "Servers".into()));
        let r = c
            .servers
            .iter()
            .map(|s| {
                let at = s
                    .location
                    .clone()
                    .or_else(|| s.path.clone())
                    .or_else(|| s.host.clone())
                    .unwrap_or_default();
                vec![
                    s.server.clone(),
                    s.server_type.as_str().to_owned(),
                    s.environment.clone().unwrap_or_default(),
                    at,
                ]
            })
            .collect();
        b.push(Block::Table(
            ["Server", "Type", "Environment", "Where"]
                .map(String::from)
                .to_vec(),
            r,
        ));
    }
    let members = c.team_members();
    if !members.is_empty() {
        b.push(Block::Heading(2, "Team".into()));
        let r = members
            .iter()
            .map(|m| {
                vec![
                    m.username.clone(),
                    m.name.clone().unwrap_or_default(),
                    m.role.clone().unwrap_or_default(),
                ]
            })
            .collect();
        b.push(Block::Table(
            ["User", "Name", "Role"].map(String::from).to_vec(),
            r,
        ));
    }
    if !c.support.is_empty() {
        b.push(Block::Heading(2, "Support".into()));
        let r = c
            .support
            .iter()
            .map(|s| {
                vec![
                    s.channel.clone(),
                    s.url.clone().unwrap_or_default(),
                    s.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        b.push(Block::Table(
            ["Channel", "URL", "Description"].map(String::from).to_vec(),
            r,
        ));
    }
    b
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn markdown(c: &Contract) -> Exported {
    let mut out = String::new();
    for block in blocks(c) {
        match block {
            Block::Heading(level, text) => out.push_str(&format!(
                "{} {}\n\n",
                "#".repeat(level.into()),
                md_cell(&text)
            )),
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::Table(head, rows) => {
                out.push_str(&format!(
                    "| {} |\n",
                    head.iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
                out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                for r in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    ));
                }
                out.push('\n');
            }
        }
    }
    Exported {
        text: out,
        lost: Vec::new(),
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Markdown's inline `code` and **bold** in a paragraph, escaped for HTML.
fn inline(text: &str) -> String {
    let escaped = esc(text);
    let mut out = String::new();
    let mut code = false;
    for (i, part) in escaped.split('`').enumerate() {
        if i > 0 {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        }
        out.push_str(part);
    }
    if code {
        out.push_str("</code>");
    }
    let mut bold = String::new();
    for (i, part) in out.split("**").enumerate() {
        if i > 0 {
            bold.push_str(if i % 2 == 1 { "<strong>" } else { "</strong>" });
        }
        bold.push_str(part);
    }
    bold
}

pub(crate) fn html(c: &Contract) -> Exported {
    let title = esc(&c.name.clone().or_else(|| c.id.clone()).unwrap_or_default());
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1d2330}}table{{border-collapse:collapse;width:100%;margin:1rem 0}}th,td{{border:1px solid #d5dae3;padding:.35rem .5rem;text-align:left;vertical-align:top}}th{{background:#f2f4f8}}code{{background:#f2f4f8;padding:0 .2rem}}</style>\n</head>\n<body>\n"
    );
    for block in blocks(c) {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(&text)))
            }
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(&text))),
            Block::Table(head, rows) => {
                out.push_str("<table>\n<thead><tr>");
                for h in head {
                    out.push_str(&format!("<th scope=\"col\">{}</th>", esc(&h)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for cell in r {
                        out.push_str(&format!("<td>{}</td>", esc(&cell)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    Exported {
        text: out,
        lost: Vec::new(),
    }
}
