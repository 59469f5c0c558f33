//! Helpers shared by the integration tests: engines compiled from config text, the default
//! engine compiled once, and request analysis by path.

#![allow(dead_code, clippy::panic)] // not every test file uses every helper; tests fail loudly

use tollgate_engine::{Engine, RequestAnalysis};

/// An engine from a JSON config.
pub fn engine(config: &str) -> Engine {
    Engine::from_json(config.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// The default engine, compiled once for all tests of a binary (it is `Sync`).
pub fn default_engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| engine("{}"))
}

/// Analyses `body` as a request to `path`.
pub fn request(engine: &Engine, path: &str, body: &[u8]) -> RequestAnalysis {
    let route = engine
        .route(None, path)
        .unwrap_or_else(|| panic!("no route for {path}"));
    engine
        .analyze_request(&route, body)
        .unwrap_or_else(|e| panic!("{e}"))
}
