//! `tollgate-collector`: a thin shell over [`tollgate_collector::run`] — configuration from a
//! file, the environment and flags; logs; Ctrl-C / SIGTERM for a graceful stop — plus the
//! everyday commands: `keys create|list|revoke` and `query traces|usage|findings`.

// `serde_json::Value` indexing returns `Null` for anything missing: it cannot panic
#![allow(clippy::indexing_slicing)]

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tollgate_collector::config::{CollectorConfig, StorageConfig};
use tollgate_collector::keys::{KeyStore, Role};

/// Receives trace summaries from the Tollgate filter and serves the query API.
#[derive(Parser, Debug)]
#[command(name = "tollgate-collector", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, global = true)]
    config: Option<std::path::PathBuf>,
    /// gRPC ingest address (overrides the file and TOLLGATE_COLLECTOR_GRPC_LISTEN).
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
    /// Query API address.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// SQLite database file.
    #[arg(long, global = true)]
    db: Option<std::path::PathBuf>,
    /// Storage: `clickhouse://host:8123/database`, or a SQLite path.
    #[arg(long, global = true)]
    storage: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the collector (the default).
    Serve,
    /// Manage API keys of the query API (works on the database directly).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Ask a running collector.
    Query(QueryArgs),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key; prints it once.
    Create {
        #[arg(long)]
        name: String,
        /// viewer (aggregates), operator (+ traces) or admin (+ keys).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Limit the key to these tenants (repeat); none: all tenants.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// traces, usage or findings.
    what: String,
    /// The collector's API.
    #[arg(
        long,
        env = "TOLLGATE_COLLECTOR_URL",
        default_value = "http://127.0.0.1:7318"
    )]
    url: String,
    /// API key.
    #[arg(long, env = "TOLLGATE_COLLECTOR_KEY")]
    key: Option<String>,
    /// Group by (usage: tenant, model, provider, route; findings: category, rule, tenant).
    #[arg(long)]
    by: Option<String>,
    /// minute, hour, day, week or month.
    #[arg(long)]
    bucket: Option<String>,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// traces: outcome filter.
    #[arg(long)]
    outcome: Option<String>,
    /// traces: page size.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// table or json.
    #[arg(long, default_value = "table")]
    format: String,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<CollectorConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            CollectorConfig::from_yaml(&text).with_context(|| path.display().to_string())?
        }
        None => CollectorConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(a) = args.grpc_listen {
        config.grpc_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    if let Some(db) = &args.db {
        config.storage = StorageConfig::Sqlite { path: db.clone() };
    }
    if let Some(s) = &args.storage {
        config.storage = StorageConfig::parse(s)?;
    }
    config.validate()?;
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.serve),
        Command::Keys(k) => keys(&cli.serve, k),
        Command::Query(q) => query(&q),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = load_config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        tollgate_collector::run(config, shutdown, None).await
    })
}

fn keys(args: &ServeArgs, command: KeysCommand) -> anyhow::Result<()> {
    let config = load_config(args)?;
    let path = match &config.storage {
        StorageConfig::Sqlite { path } => path,
        StorageConfig::Clickhouse { keys_path, .. } => keys_path,
    };
    let store = KeyStore::open(path)?;
    match command {
        KeysCommand::Create {
            name,
            role,
            tenants,
        } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role}: viewer, operator or admin"))?;
            let (id, key) = store.create(&name, role, &tenants)?;
            println!("created key {id} ({}): {key}", role.as_str());
            println!("store it now: it is not shown again");
        }
        KeysCommand::List { format } => {
            let keys = store.list()?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<10} {:<9} {:<8} {:<24} tenants",
                    "id", "role", "state", "name"
                );
                for k in keys {
                    println!(
                        "{:<10} {:<9} {:<8} {:<24} {}",
                        k.id,
                        k.role.as_str(),
                        if k.revoked { "revoked" } else { "active" },
                        k.name,
                        if k.tenants.is_empty() {
                            "*".to_string()
                        } else {
                            k.tenants.join(",")
                        }
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke(&id)? {
                bail!("no key with id {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn query(q: &QueryArgs) -> anyhow::Result<()> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            params.push((k.to_string(), v.clone()));
        }
    };
    add("from", &q.from);
    add("to", &q.to);
    add("tenant", &q.tenant);
    add("bucket", &q.bucket);
    let path = match q.what.as_str() {
        "traces" => {
            add("outcome", &q.outcome);
            params.push(("limit".into(), q.limit.to_string()));
            "/v1/traces"
        }
        "usage" => {
            add("group_by", &q.by);
            "/v1/usage"
        }
        "findings" => {
            add("by", &q.by);
            "/v1/findings"
        }
        other => bail!("query {other}: traces, usage or findings"),
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let path = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let v = tollgate_collector::client::get_json(&q.url, &path, q.key.as_deref())?;
    if q.format == "json" {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match q.what.as_str() {
        "traces" => print_table(
            &[
                "start",
                "tenant",
                "model",
                "outcome",
                "in",
                "out",
                "cost $",
                "ms",
                "request id",
            ],
            v["traces"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        t["start"]
                            .as_str()
                            .unwrap_or("")
                            .get(..19)
                            .unwrap_or("")
                            .to_string(),
                        text(&t["tenant"]),
                        text(&t["model"]),
                        text(&t["outcome"]),
                        text(&t["usage"]["input_tokens"]),
                        text(&t["usage"]["output_tokens"]),
                        usd(&t["cost_micro_usd"]),
                        ms(&t["latency_ms"]),
                        text(&t["request_id"]),
                    ]
                }),
        ),
        "usage" => print_grouped(
            &v["rows"],
            &[
                ("requests", &|r| text(&r["requests"])),
                ("in", &|r| text(&r["input_tokens"])),
                ("out", &|r| text(&r["output_tokens"])),
                ("cost $", &|r| usd(&r["cost_micro_usd"])),
                ("errors", &|r| text(&r["errors"])),
                ("blocked", &|r| text(&r["blocked"])),
                ("p50 ms", &|r| ms(&r["latency_ms"]["p50"])),
                ("p95 ms", &|r| ms(&r["latency_ms"]["p95"])),
            ],
        ),
        _ => print_grouped(
            &v["rows"],
            &[
                ("findings", &|r| text(&r["findings"])),
                ("traces", &|r| text(&r["traces"])),
            ],
        ),
    }
    Ok(())
}

/// A named table column and how to render a row's cell.
type Column<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

/// Grouped rows (usage, findings): the bucket, the group's values, then `columns`.
fn print_grouped(rows: &Value, columns: &[Column<'_>]) {
    let dims = group_names(rows);
    let mut header = vec!["bucket"];
    header.extend(dims.iter().map(String::as_str));
    header.extend(columns.iter().map(|(name, _)| *name));
    print_table(
        &header,
        rows.as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let mut row = vec![r["bucket"].as_str().unwrap_or("*").to_string()];
                row.extend(dims.iter().map(|d| text(&r["group"][d])));
                row.extend(columns.iter().map(|(_, cell)| cell(r)));
                row
            }),
    );
}

/// Milliseconds, whole.
fn ms(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |m| format!("{m:.0}"))
}

fn group_names(rows: &Value) -> Vec<String> {
    rows.as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["group"].as_object())
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn usd(v: &Value) -> String {
    v.as_i64()
        .map_or("-".into(), |m| format!("{:.4}", m as f64 / 1e6))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
