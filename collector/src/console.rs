//! The web console's static files under `/ui` (embedded at build time by `build.rs`: the pages,
//! scripts and styles in `collector/ui/`, and the engine's browser build for the playground).
//! The pages call the `/v1` API with the key the user signs in with, so every number they show
//! is scoped and authorised exactly as the API's; the files themselves are public.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

mod files {
    include!(concat!(env!("OUT_DIR"), "/console_files.rs"));
}

/// What browsers may do with the console's pages: scripts and data from the collector only
/// (`wasm-unsafe-eval` lets the playground compile the engine), no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// The `/ui` routes.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { asset("index.html", &headers) }),
        )
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>, headers: HeaderMap| async move { asset(&p, &headers) }),
        )
}

/// Whether the request's `accept-encoding` takes gzip (and does not refuse it with `q=0`).
fn gzip_ok(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// One console file: gzip-compressed when the browser takes it, `304` when the browser's copy
/// (`if-none-match`) is current.
fn asset(path: &str, request: &HeaderMap) -> Response {
    let Some((_, plain, gz, etag)) = files::FILES.iter().find(|(name, ..)| *name == path) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let gzip = gzip_ok(request);
    // the tag names the contents; the encoding is told apart by a suffix (RFC 9110 8.8.3)
    let tag = if gzip {
        format!("{}-gz\"", etag.trim_end_matches('"'))
    } else {
        (*etag).to_string()
    };
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*");
    let mut resp = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        if gzip { *gz } else { *plain }.into_response()
    };
    let h = resp.headers_mut();
    if gzip && !current {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // the files change with the binary: revalidate (a 304 when unchanged) rather than cache
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_static(v)))
            .collect()
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(!gzip_ok(&HeaderMap::new()));
        assert!(gzip_ok(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br"
        )])));
        assert!(gzip_ok(&headers(&[(
            header::ACCEPT_ENCODING,
            "br;q=1.0, *;q=0.5"
        )])));
        assert!(!gzip_ok(&headers(&[(
            header::ACCEPT_ENCODING,
            "br, gzip;q=0"
        )])));
    }

    #[tokio::test]
    async fn compressed_files_go_to_browsers_that_accept_them() {
        let plain = body(asset("app.js", &HeaderMap::new())).await;
        let gz = asset("app.js", &headers(&[(header::ACCEPT_ENCODING, "gzip")]));
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let gz = body(gz).await;
        assert!(gz.len() < plain.len());
        assert_eq!(gunzip(&gz), plain);
    }

    #[tokio::test]
    async fn a_current_copy_is_not_sent_again() {
        let first = asset("app.js", &headers(&[(header::ACCEPT_ENCODING, "gzip")]));
        let tag = first.headers()[header::ETAG]
            .to_str()
            .expect("tag")
            .to_string();
        let again: HeaderMap = [
            (header::ACCEPT_ENCODING, HeaderValue::from_static("gzip")),
            (
                header::IF_NONE_MATCH,
                HeaderValue::from_str(&tag).expect("tag"),
            ),
        ]
        .into_iter()
        .collect();
        let second = asset("app.js", &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert!(body(second).await.is_empty());
        // the uncompressed copy has another tag: a gzip tag does not validate it
        let plain: HeaderMap = [(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&tag).expect("tag"),
        )]
        .into_iter()
        .collect();
        assert_eq!(asset("app.js", &plain).status(), StatusCode::OK);
    }

    #[test]
    fn the_pages_are_embedded_with_their_types() {
        let none = HeaderMap::new();
        let index = asset("index.html", &none);
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(index.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or("")
            .contains("frame-ancestors 'none'"));
        assert_eq!(
            asset("app.js", &none).headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            asset("../Cargo.toml", &none).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(asset("nope.js", &none).status(), StatusCode::NOT_FOUND);
    }
}
