//! The dependency policy of `deny.toml`, checked from `Cargo.lock` without cargo-deny (which
//! took 702 s to install here, too slow for CI): banned crates are absent, selected crates come
//! in one major version, and every crate's licence is one `deny.toml` allows. Also: every HTTP
//! client is built with iocsync's TLS setup (reqwest is built without a TLS provider of its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates whose second major version would mean two TLS stacks, two HTTP stacks, two SQLite
/// builds or two runtimes in the binary.
const ONE_MAJOR: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "http",
    "h2",
    "reqwest",
    "rustls",
    "rustls-webpki",
    "rustls-pki-types",
    "ring",
    "webpki-roots",
    "rusqlite",
    "libsqlite3-sys",
    "axum",
    "tower",
    "serde",
    "serde_json",
    "toml",
    "tracing",
    "tracing-subscriber",
    "url",
    "idna",
    "chrono",
    "clap",
    "sha1",
    "sha2",
    "indicatif",
    "croner",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn toml_file(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(name, version)` of every registry package in `Cargo.lock` (the workspace's own crates left out).
fn locked_packages() -> Vec<(String, String)> {
    let lock = toml_file(&root().join("Cargo.lock"));
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").and_then(|s| s.as_str()).is_some_and(|s| s.starts_with("registry+")))
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["version"].as_str().unwrap().to_owned()))
        .collect()
}

/// The semver-incompatible part of a version: `0.13` for `0.13.5`, `1` for `1.2.3`.
fn major(version: &str) -> String {
    let mut parts = version.split(['.', '+', '-']);
    let first = parts.next().unwrap_or("");
    if first == "0" { format!("0.{}", parts.next().unwrap_or("")) } else { first.to_owned() }
}

/// Duplicate majors among `names`, as `name: [majors]`.
fn duplicates(packages: &[(String, String)], names: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut majors: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (n, v) in packages.iter().filter(|(n, _)| names.contains(&n.as_str())) {
        majors.entry(n.clone()).or_default().insert(major(v));
    }
    majors.retain(|_, m| m.len() > 1);
    majors
}

/// Whether an SPDX expression is satisfied by `allowed`: one `OR` alternative whose `AND` parts
/// (`X WITH exception` allowed as a whole) are all allowed, with parentheses. Also reads the old
/// `MIT/Apache-2.0` form. A malformed expression is not allowed.
fn licence_allowed(expr: &str, allowed: &BTreeSet<String>) -> bool {
    let expr = expr.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    let mut pos = 0;
    let ok = or_expr(&tokens, &mut pos, allowed);
    ok && pos == tokens.len()
}

/// `and_expr ("OR" and_expr)*`; evaluates every term so `pos` ends past the expression.
fn or_expr(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> bool {
    let mut ok = and_expr(t, pos, allowed);
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        ok |= and_expr(t, pos, allowed);
    }
    ok
}

/// `term ("AND" term)*`.
fn and_expr(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> bool {
    let mut ok = term(t, pos, allowed);
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        ok &= term(t, pos, allowed);
    }
    ok
}

/// `"(" or_expr ")"` or `licence ["WITH" exception]` (allowed only as written in the list).
fn term(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> bool {
    match t.get(*pos) {
        Some(&"(") => {
            *pos += 1;
            let ok = or_expr(t, pos, allowed);
            let closed = t.get(*pos) == Some(&")");
            *pos += usize::from(closed);
            ok && closed
        }
        Some(id) if !matches!(*id, ")" | "OR" | "AND" | "WITH") => {
            *pos += 1;
            if t.get(*pos) == Some(&"WITH") {
                let exception = t.get(*pos + 1).copied().unwrap_or("");
                *pos += 2;
                allowed.contains(&format!("{id} WITH {exception}"))
            } else {
                allowed.contains(*id)
            }
        }
        _ => false,
    }
}

#[test]
fn banned_crates_are_absent_and_selected_crates_have_one_major_version() {
    let deny = toml_file(&root().join("deny.toml"));
    let packages = locked_packages();
    assert!(packages.len() > 100, "Cargo.lock read: {} packages", packages.len());
    let banned: Vec<&str> =
        deny["bans"]["deny"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(banned.contains(&"rsa"), "deny.toml bans rsa (RUSTSEC-2023-0071)");
    let present: Vec<&str> =
        packages.iter().map(|(n, _)| n.as_str()).filter(|n| banned.contains(n)).collect();
    assert!(present.is_empty(), "banned crates in Cargo.lock: {present:?}");
    let dups = duplicates(&packages, ONE_MAJOR);
    assert!(dups.is_empty(), "two major versions of: {dups:?}");
}

#[test]
fn the_checks_catch_a_second_major_and_a_denied_licence() {
    let p = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let two = [p("reqwest", "0.12.28"), p("reqwest", "0.13.5"), p("toml", "1.0.0"), p("toml", "1.2.2")];
    let dups = duplicates(&two, ONE_MAJOR);
    assert_eq!(dups.keys().collect::<Vec<_>>(), ["reqwest"], "0.12 and 0.13 differ; 1.0 and 1.2 do not");
    let allowed: BTreeSet<String> = ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "ISC"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for ok in
        ["MIT", "MIT OR Apache-2.0", "MIT/Apache-2.0", "Apache-2.0 AND ISC", "(MIT OR Apache-2.0) AND ISC"]
    {
        assert!(licence_allowed(ok, &allowed), "{ok}");
    }
    for bad in [
        "GPL-3.0-only",
        "AGPL-3.0",
        "MIT AND GPL-2.0",
        "LGPL-2.1-or-later",
        "",
        "(MIT OR GPL-3.0) AND GPL-3.0",
        "GPL-3.0 WITH LLVM-exception",
        "(MIT",
    ] {
        assert!(!licence_allowed(bad, &allowed), "{bad}");
    }
    assert!(licence_allowed("Apache-2.0 WITH LLVM-exception OR GPL-3.0", &allowed));
}

#[test]
fn every_downloaded_crate_has_an_allowed_licence() {
    let deny = toml_file(&root().join("deny.toml"));
    let allowed: BTreeSet<String> = deny["licenses"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    // The crates' own manifests, where cargo unpacked them (only the host's crates are fetched).
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let sources: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let mut checked = 0;
    let mut refused = Vec::new();
    for (name, version) in locked_packages() {
        let Some(manifest) =
            sources.iter().map(|s| s.join(format!("{name}-{version}/Cargo.toml"))).find(|m| m.exists())
        else {
            continue;
        };
        let package = toml_file(&manifest);
        let licence = package["package"].get("license").and_then(|l| l.as_str()).unwrap_or("");
        checked += 1;
        if !licence_allowed(licence, &allowed) {
            refused.push(format!("{name} {version}: {licence:?}"));
        }
    }
    assert!(checked > 100, "only {checked} crate manifests found under {}", cargo_home.display());
    assert!(refused.is_empty(), "licences deny.toml does not allow: {refused:#?}");
}

#[test]
fn every_http_client_is_built_with_iocsyncs_tls() {
    // reqwest's `rustls-no-provider` build panics in `Client::new()`, `reqwest::get()` and a
    // bare `Client::builder().build()`: use `iocsync_defender::tls::http_client_builder()`.
    let mut offenders = Vec::new();
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests/it/deps.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let bare = [
                        "reqwest::Client::new()",
                        "reqwest::get(",
                        "reqwest::Client::builder()",
                        "reqwest::Client::default()",
                    ]
                    .iter()
                    .any(|p| line.contains(p));
                    let code = !line.trim_start().starts_with("//");
                    if bare && code && !line.contains("tls_backend_preconfigured") {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "use iocsync_defender::tls::http_client_builder(): {offenders:#?}");
}
