//! Embeds the web console: every file under `ui/` (committed; dotfiles and editor leftovers
//! skipped) and, when `make web` has built it, the browser build of the engine
//! (`tollgate_web.js` and `tollgate_web_bg.wasm`, from `TOLLGATE_WEB_PKG`, or `web/pkg` in
//! `CARGO_TARGET_DIR` or the workspace's `target/`) served as `pkg/...` — both files or neither.
//! Without the browser build the console works and its playground says how to build the
//! engine. Each file is also embedded gzip-compressed (best compression, once, here) for
//! browsers that accept it — the engine's 2.7 MB of wasm travel as 0.9 MB — with an entity tag
//! from its contents, so a browser revalidates instead of downloading it again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const ENGINE_FILES: [&str; 2] = ["tollgate_web.js", "tollgate_web_bg.wasm"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    println!("cargo:rerun-if-env-changed=TOLLGATE_WEB_PKG");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let pkg = std::env::var_os("TOLLGATE_WEB_PKG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("web/pkg")))
        .unwrap_or_else(|| manifest.join("../target/web/pkg"));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    collect(&ui, &ui, &mut files);
    for name in ENGINE_FILES {
        println!("cargo:rerun-if-changed={}", pkg.join(name).display());
    }
    if ENGINE_FILES.iter().all(|name| pkg.join(name).is_file()) {
        files.extend(ENGINE_FILES.map(|name| (format!("pkg/{name}"), pkg.join(name))));
    } else {
        println!(
            "cargo:warning=console playground not embedded: {} has no browser build (run `make web`)",
            pkg.display()
        );
    }
    files.sort();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let mut out = String::from(
        "/// The console's files: (path under `/ui/`, contents, gzip-compressed contents, entity tag).\n",
    );
    out.push_str("pub static FILES: &[(&str, &[u8], &[u8], &str)] = &[\n");
    for (i, (name, path)) in files.iter().enumerate() {
        let gz = out_dir.join(format!("console_{i}.gz"));
        let etag = match compress(path, &gz) {
            Ok(tag) => tag,
            Err(e) => {
                println!("cargo:warning=cannot embed {}: {e}", path.display());
                continue;
            }
        };
        let _ = writeln!(
            out,
            "    ({name:?}, include_bytes!({:?}), include_bytes!({:?}), {etag:?}),",
            path.display().to_string(),
            gz.display().to_string()
        );
    }
    out.push_str("];\n");
    if let Err(e) = std::fs::write(out_dir.join("console_files.rs"), out) {
        println!("cargo:warning=cannot write the console's file list: {e}");
    }
}

/// Writes `from` gzip-compressed to `to`; returns the entity tag of its contents (CRC-32 and
/// length).
fn compress(from: &Path, to: &Path) -> std::io::Result<String> {
    use std::io::Write as _;
    let data = std::fs::read(from)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&data)?;
    std::fs::write(to, gz.finish()?)?;
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    Ok(format!("\"{:08x}-{:x}\"", crc.sum(), data.len()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
        }
    }
}
