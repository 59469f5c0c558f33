//! Embeds the web console: every file under `ui/` (committed) and, when `make web` has built it,
//! the browser build of the engine (`tollgate_web.js` and `tollgate_web_bg.wasm`, from
//! `TOLLGATE_WEB_PKG` or `target/web/pkg`) served as `pkg/...`. Without the browser build the
//! console works and its playground says how to build the engine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    println!("cargo:rerun-if-env-changed=TOLLGATE_WEB_PKG");
    let pkg = std::env::var_os("TOLLGATE_WEB_PKG")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/web/pkg"));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    collect(&ui, &ui, &mut files);
    let mut with_engine = true;
    for name in ["tollgate_web.js", "tollgate_web_bg.wasm"] {
        let p = pkg.join(name);
        println!("cargo:rerun-if-changed={}", p.display());
        if p.is_file() {
            files.push((format!("pkg/{name}"), p));
        } else {
            with_engine = false;
        }
    }
    if !with_engine {
        println!(
            "cargo:warning=console playground not embedded: {} has no browser build (run `make web`)",
            pkg.display()
        );
    }
    files.sort();
    let mut out = String::from("/// The console's files: (path under `/ui/`, contents).\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let _ = writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let _ = writeln!(out, "/// Whether the engine's browser build is embedded.\npub const WITH_ENGINE: bool = {with_engine};");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("console_files.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
        }
    }
}
