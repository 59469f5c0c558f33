//! `tollgate`: the inline engine on the command line, with the same config format as the Envoy
//! filter.
//!
//! # Layout
//! - `scan`: text, JSONL or a whole provider request body → findings and the decided action.
//! - `check-config`: validates a config file (JSON or YAML); errors name the field.
//! - `rules`: every built-in rule with id, category, severity and description.
//! - `features`: the learned scorer's window features of JSONL texts, for `eval/train_scorer.py`.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_engine::report::{self, ConfigFormat};
use tollgate_engine::{Decision, Engine, EngineError};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate's LLM security engine on text, JSONL and request bodies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan text (stdin or FILE) for prompt injection, PII and secrets.
    Scan {
        /// Text file to scan (default: stdin).
        file: Option<PathBuf>,
        /// Read JSON objects with a `text` field, one per line; write one JSON result per line.
        #[arg(long)]
        jsonl: bool,
        /// Scan a whole provider request body (JSON) instead of plain text.
        #[arg(long, value_name = "FILE", conflicts_with = "jsonl")]
        request: Option<PathBuf>,
        /// API path that tells the provider format of --request.
        #[arg(long, default_value = "/v1/chat/completions")]
        path: String,
        /// Config file (JSON or YAML), the same format as the Envoy filter's.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output format for plain text and --request.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit with status 3 when the decision is at least this action.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
    },
    /// Validate a config file; exit 0 when valid, 1 with the field path when not.
    CheckConfig { file: PathBuf },
    /// Print the learned scorer's features: for each JSONL line with a `text`, one line
    /// `{"windows": [[bucket, ...], ...]}` (used by eval/train_scorer.py).
    #[command(hide = true)]
    Features {
        /// JSONL file (default: stdin).
        file: Option<PathBuf>,
        /// Hash buckets are 2^bits.
        #[arg(long, default_value_t = 18)]
        bits: u32,
        /// Tokens per window.
        #[arg(long, default_value_t = 32)]
        window: usize,
    },
    /// List every rule.
    Rules {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    Log,
    Tag,
    Redact,
    Block,
}

impl FailOn {
    fn decision(self) -> Decision {
        match self {
            FailOn::Log => Decision::Log,
            FailOn::Tag => Decision::Tag,
            FailOn::Redact => Decision::Redact,
            FailOn::Block => Decision::Block,
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => {
            let verdict = report::config_report(load_engine(Some(&file)).as_ref());
            match verdict.errors.first() {
                None => {
                    println!(
                        "{}: ok ({} rules, {} priced models)",
                        file.display(),
                        verdict.rules,
                        verdict.priced_models
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(e) => {
                    eprintln!(
                        "{}: invalid config at `{}`: {}",
                        file.display(),
                        e.path,
                        e.message
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Features { file, bits, window } => {
            if !(8..=22).contains(&bits) || window < 2 {
                bail!("--bits must be 8..=22 and --window at least 2");
            }
            print_features(file.as_deref(), bits, window)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { format, config } => {
            let engine = load_engine(config.as_deref())?;
            print_rules(&engine, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan {
            file,
            jsonl,
            request,
            path,
            config,
            format,
            fail_on,
        } => {
            let engine = load_engine(config.as_deref())?;
            let decision = if jsonl {
                scan_jsonl(&engine, file.as_deref())?
            } else if let Some(req) = request {
                scan_request(&engine, &req, &path, format)?
            } else {
                scan_plain(&engine, file.as_deref(), format)?
            };
            Ok(match fail_on {
                Some(f) if decision >= f.decision() => ExitCode::from(3),
                _ => ExitCode::SUCCESS,
            })
        }
    }
}

/// Reads a JSON or YAML config (by extension; content sniffed otherwise) and compiles it. A file
/// that cannot be read is reported as a problem of the document.
fn load_engine(path: Option<&Path>) -> Result<Engine, EngineError> {
    let Some(path) = path else {
        return Engine::with_defaults();
    };
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::Config {
        path: "(root)".into(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let format = match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "json" => ConfigFormat::Json,
        "yaml" | "yml" => ConfigFormat::Yaml,
        _ => ConfigFormat::Detect,
    };
    report::engine_from_text(&text, format)
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        Some(p) => buf = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
        }
    }
    Ok(buf)
}

/// One line of `scan --jsonl`: the input's position and id, then the scan's report.
#[derive(Serialize)]
struct JsonlLine<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a serde_json::Value>,
    #[serde(flatten)]
    report: report::ScanReport,
}

fn scan_plain(engine: &Engine, file: Option<&Path>, format: Format) -> Result<Decision> {
    let bytes = read_input(file)?;
    let text = String::from_utf8_lossy(&bytes);
    let (findings, risk, decision) = engine.scan_text(&text);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let o = report::scan_report(&findings, risk, decision);
            serde_json::to_writer_pretty(&mut out, &o)?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(
                out,
                "decision: {}  risk: {:.3}  findings: {}",
                decision.as_str(),
                risk,
                findings.len()
            )?;
            for f in &findings {
                writeln!(
                    out,
                    "  {:<8} {:<40} {:<22} {:<8} bytes {}..{}",
                    f.action.as_str(),
                    &*f.rule_id,
                    &*f.category,
                    f.severity.as_str(),
                    f.start,
                    f.end
                )?;
            }
        }
    }
    Ok(decision)
}

fn print_features(file: Option<&Path>, bits: u32, window: usize) -> Result<()> {
    let reader: Box<dyn BufRead> = match file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line.context("reading input")?;
        let value: serde_json::Value = serde_json::from_slice(&line)
            .with_context(|| format!("line {}: invalid JSON", index + 1))?;
        let text = value
            .get("text")
            .and_then(|t| t.as_str())
            .with_context(|| format!("line {}: no string field `text`", index + 1))?;
        let windows = tollgate_engine::detect::scorer::window_features(text, bits, window);
        serde_json::to_writer(&mut out, &serde_json::json!({ "windows": windows }))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn scan_jsonl(engine: &Engine, file: Option<&Path>) -> Result<Decision> {
    let reader: Box<dyn BufRead> = match file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut worst = Decision::Allow;
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line.context("reading input")?;
        if line.iter().all(u8::is_ascii_whitespace) {
            writeln!(
                out,
                "{}",
                serde_json::json!({"index": index, "error": "empty line"})
            )?;
            continue;
        }
        let value: serde_json::Value = match serde_json::from_slice(&line) {
            Ok(v) => v,
            Err(e) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"index": index, "error": format!("invalid JSON: {e}")})
                )?;
                continue;
            }
        };
        let Some(text) = value.get("text").and_then(|t| t.as_str()) else {
            writeln!(
                out,
                "{}",
                serde_json::json!({"index": index, "error": "no string field `text`"})
            )?;
            continue;
        };
        let (findings, risk, decision) = engine.scan_text(text);
        worst = worst.max(decision);
        let o = JsonlLine {
            index,
            id: value.get("id"),
            report: report::scan_report(&findings, risk, decision),
        };
        serde_json::to_writer(&mut out, &o)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(worst)
}

fn scan_request(engine: &Engine, file: &Path, path: &str, format: Format) -> Result<Decision> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let r = report::request_report(engine, path, &body)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &r)?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(
                out,
                "{} {} model={} stream={}  decision: {}  risk: {:.3}  findings: {}",
                r.provider,
                r.operation,
                r.model.as_deref().unwrap_or("-"),
                r.stream,
                r.action,
                r.risk_score,
                r.findings.len()
            )?;
            for f in &r.findings {
                writeln!(
                    out,
                    "  {:<8} {:<40} {:<22} {:<8} message {} ({}) bytes {}..{}",
                    f.action,
                    &*f.rule_id,
                    &*f.category,
                    f.severity,
                    f.message_index.unwrap_or(0),
                    f.role.unwrap_or("-"),
                    f.start,
                    f.end
                )?;
            }
            if let Some(b) = &r.sent {
                writeln!(out, "body sent instead:\n{}", String::from_utf8_lossy(b))?;
            }
        }
    }
    Ok(r.decision)
}

fn print_rules(engine: &Engine, format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let rules = report::rules_report(engine);
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &rules)?;
        writeln!(out)?;
        return Ok(());
    }
    for r in rules {
        writeln!(
            out,
            "{:<44} {:<22} {:<8} {:<6} {}",
            r.id, r.category, r.severity, r.default_action, r.description
        )?;
    }
    Ok(())
}
