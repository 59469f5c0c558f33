//! Who a request belongs to. The operator lists identity sources in order (a header, a claim that
//! Envoy's `jwt_authn` filter verified, the claim of a bearer JWT read without verification, a
//! SHA-256 of the API key, a host property such as the peer's SPIFFE principal); the first that
//! yields a value names the tenant, otherwise the configured default (`anonymous`). The engine
//! never talks to the host: it asks a [`RequestFacts`] for headers and properties, so the rules
//! are tested here with a plain map and the plugin supplies Envoy's values. An API key is never
//! kept: only a truncated hash of it leaves this module.

use crate::error::EngineError;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest tenant id kept (bytes); longer values are cut at a character boundary.
pub const MAX_TENANT_BYTES: usize = 128;

/// What the engine may ask the host about a request.
pub trait RequestFacts {
    /// A request header (lowercase name), if present.
    fn header(&self, name: &str) -> Option<String>;
    /// A host property by path (Envoy attributes such as `connection.uri_san_peer_certificate`
    /// or `metadata.filter_metadata.<ns>.<key>`), as the host serialises it.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
}

/// Tenant configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenant {
    /// Sources tried in order; the first that yields a non-empty value wins.
    pub sources: Vec<RawTenantSource>,
    /// Tenant of requests no source identifies.
    pub default: String,
}

impl Default for RawTenant {
    fn default() -> Self {
        RawTenant {
            sources: Vec::new(),
            default: "anonymous".to_string(),
        }
    }
}

/// One identity source, tagged by `from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTenantSource {
    /// A request header set by a trusted component in front (e.g. `x-tenant-id`).
    Header { name: String },
    /// A claim of a token Envoy's `jwt_authn` filter verified and wrote to dynamic metadata
    /// (`payload_in_metadata: <key>`).
    JwtMetadata {
        /// The `payload_in_metadata` name used in the `jwt_authn` provider.
        key: String,
        /// Claim name; `a.b` reaches into nested objects when no claim is literally named so.
        claim: String,
        /// Metadata namespace (default `envoy.filters.http.jwt_authn`).
        #[serde(default = "jwt_authn_namespace")]
        namespace: String,
    },
    /// A claim read from the payload of the request's bearer JWT **without verifying it**. Only
    /// for deployments where the token was verified upstream of Envoy or the tenant is not a
    /// security boundary.
    UnverifiedJwt {
        claim: String,
        /// Header carrying `Bearer <jwt>` (default `authorization`).
        #[serde(default = "authorization")]
        header: String,
    },
    /// `key:` and the first 24 hex digits of the SHA-256 of the API key (`x-api-key`,
    /// `api-key`, `x-goog-api-key`, or `Authorization: Bearer`). The key itself is never kept.
    ApiKeyHash,
    /// The peer certificate's URI SAN (a SPIFFE id such as
    /// `spiffe://cluster.local/ns/team-a/sa/app` under Istio mTLS).
    PeerPrincipal,
    /// Any host property holding a string, by path (`["connection", "requested_server_name"]`).
    Property { path: Vec<String> },
}

fn jwt_authn_namespace() -> String {
    "envoy.filters.http.jwt_authn".to_string()
}

fn authorization() -> String {
    "authorization".to_string()
}

/// Which source named the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    Header,
    JwtMetadata,
    UnverifiedJwt,
    ApiKeyHash,
    PeerPrincipal,
    Property,
    Default,
}

impl TenantSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantSource::Header => "header",
            TenantSource::JwtMetadata => "jwt_metadata",
            TenantSource::UnverifiedJwt => "unverified_jwt",
            TenantSource::ApiKeyHash => "api_key_hash",
            TenantSource::PeerPrincipal => "peer_principal",
            TenantSource::Property => "property",
            TenantSource::Default => "default",
        }
    }
}

/// A resolved tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub source: TenantSource,
}

#[derive(Debug, Clone)]
enum Source {
    Header(String),
    JwtMetadata {
        namespace: String,
        key: String,
        claim: String,
    },
    UnverifiedJwt {
        header: String,
        claim: String,
    },
    ApiKeyHash,
    Property(Vec<String>, TenantSource),
}

/// The compiled tenant rules.
#[derive(Debug, Clone)]
pub struct TenantResolver {
    sources: Vec<Source>,
    default: String,
}

impl Default for TenantResolver {
    fn default() -> Self {
        TenantResolver {
            sources: Vec::new(),
            default: "anonymous".to_string(),
        }
    }
}

impl TenantResolver {
    /// Checks and compiles the raw rules; errors name the field.
    pub fn new(raw: &RawTenant) -> Result<Self, EngineError> {
        let default = raw.default.trim();
        if default.is_empty() || default.len() > MAX_TENANT_BYTES {
            return Err(EngineError::config(
                "tenant.default",
                format!("must be 1 to {MAX_TENANT_BYTES} bytes"),
            ));
        }
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, s) in raw.sources.iter().enumerate() {
            let field = |name: &str| format!("tenant.sources[{i}].{name}");
            let nonempty = |value: &str, name: &str| {
                if value.trim().is_empty() {
                    Err(EngineError::config(field(name), "must not be empty"))
                } else {
                    Ok(())
                }
            };
            sources.push(match s {
                RawTenantSource::Header { name } => {
                    nonempty(name, "name")?;
                    Source::Header(name.trim().to_ascii_lowercase())
                }
                RawTenantSource::JwtMetadata {
                    key,
                    claim,
                    namespace,
                } => {
                    nonempty(key, "key")?;
                    nonempty(claim, "claim")?;
                    nonempty(namespace, "namespace")?;
                    Source::JwtMetadata {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        claim: claim.clone(),
                    }
                }
                RawTenantSource::UnverifiedJwt { claim, header } => {
                    nonempty(claim, "claim")?;
                    nonempty(header, "header")?;
                    Source::UnverifiedJwt {
                        header: header.trim().to_ascii_lowercase(),
                        claim: claim.clone(),
                    }
                }
                RawTenantSource::ApiKeyHash => Source::ApiKeyHash,
                RawTenantSource::PeerPrincipal => Source::Property(
                    vec![
                        "connection".to_string(),
                        "uri_san_peer_certificate".to_string(),
                    ],
                    TenantSource::PeerPrincipal,
                ),
                RawTenantSource::Property { path } => {
                    if path.is_empty() || path.iter().any(|p| p.is_empty()) {
                        return Err(EngineError::config(
                            field("path"),
                            "must be a non-empty list of non-empty names",
                        ));
                    }
                    Source::Property(path.clone(), TenantSource::Property)
                }
            });
        }
        Ok(TenantResolver {
            sources,
            default: default.to_string(),
        })
    }

    /// True when no source is configured (every request is the default tenant).
    pub fn is_trivial(&self) -> bool {
        self.sources.is_empty()
    }

    /// The tenant of a request.
    pub fn resolve(&self, facts: &dyn RequestFacts) -> Tenant {
        for source in &self.sources {
            let found = match source {
                Source::Header(name) => facts.header(name).map(|v| (v, TenantSource::Header)),
                Source::JwtMetadata {
                    namespace,
                    key,
                    claim,
                } => jwt_metadata_claim(facts, namespace, key, claim)
                    .map(|v| (v, TenantSource::JwtMetadata)),
                Source::UnverifiedJwt { header, claim } => facts
                    .header(header)
                    .and_then(|h| unverified_jwt_claim(&h, claim))
                    .map(|v| (v, TenantSource::UnverifiedJwt)),
                Source::ApiKeyHash => {
                    api_key(facts).map(|k| (hash_key(&k), TenantSource::ApiKeyHash))
                }
                Source::Property(path, kind) => {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    facts
                        .property(&path)
                        .and_then(|b| property_text(&b))
                        .map(|v| (v, *kind))
                }
            };
            if let Some((value, source)) = found {
                if let Some(id) = clean(&value) {
                    return Tenant { id, source };
                }
            }
        }
        Tenant {
            id: self.default.clone(),
            source: TenantSource::Default,
        }
    }
}

/// Trims, drops control characters and cuts to [`MAX_TENANT_BYTES`]; `None` when nothing is left.
fn clean(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len().min(MAX_TENANT_BYTES));
    for c in value.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_TENANT_BYTES {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// A claim from `jwt_authn`'s metadata. Envoy serialises a metadata `Struct` leaf string as its
/// bytes; a whole `Struct` comes back as protobuf, so the claim is asked for by full path.
fn jwt_metadata_claim(
    facts: &dyn RequestFacts,
    namespace: &str,
    key: &str,
    claim: &str,
) -> Option<String> {
    let mut path = vec!["metadata", "filter_metadata", namespace, key];
    path.push(claim);
    if let Some(v) = facts.property(&path).and_then(|b| property_text(&b)) {
        return Some(v);
    }
    if claim.contains('.') {
        path.truncate(4);
        path.extend(claim.split('.'));
        return facts.property(&path).and_then(|b| property_text(&b));
    }
    None
}

/// A property value as text. Envoy returns strings as their bytes and numbers as 8 raw
/// little-endian bytes (a `Struct` number, such as a numeric JWT claim, is an `f64`); anything
/// else (a nested object, a list) is not an identity.
pub fn property_text(bytes: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(char::is_control) {
            return Some(s.to_string());
        }
    }
    let raw: [u8; 8] = bytes.try_into().ok()?;
    let n = f64::from_le_bytes(raw);
    if !n.is_finite() {
        return None;
    }
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Some(format!("{}", n as i64))
    } else {
        Some(n.to_string())
    }
}

/// A claim from a `Bearer` JWT's payload, not verified.
pub fn unverified_jwt_claim(header_value: &str, claim: &str) -> Option<String> {
    let token = bearer(header_value)?;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let json: Value = serde_json::from_slice(&bytes).ok()?;
    let value = json.get(claim).or_else(|| {
        claim
            .split('.')
            .try_fold(&json, |v, part| v.get(part))
            .filter(|_| claim.contains('.'))
    })?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bearer(header_value: &str) -> Option<&str> {
    let v = header_value.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The API key of a request, from the headers each provider uses.
fn api_key(facts: &dyn RequestFacts) -> Option<String> {
    for name in ["x-api-key", "api-key", "x-goog-api-key"] {
        if let Some(v) = facts.header(name).filter(|v| !v.trim().is_empty()) {
            return Some(v.trim().to_string());
        }
    }
    if let Some(token) = facts
        .header("authorization")
        .and_then(|h| bearer(&h).map(str::to_string))
    {
        return Some(token);
    }
    // Gemini also accepts `?key=` in the query
    let path = facts.header(":path")?;
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// `key:` and the first 24 hex digits (96 bits) of the key's SHA-256.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(28);
    out.push_str("key:");
    for b in digest.iter().take(12) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Facts {
        headers: HashMap<String, String>,
        properties: HashMap<Vec<String>, Vec<u8>>,
    }

    impl Facts {
        fn header(mut self, k: &str, v: &str) -> Self {
            self.headers.insert(k.to_string(), v.to_string());
            self
        }
        fn property(mut self, path: &[&str], v: &str) -> Self {
            self.properties.insert(
                path.iter().map(|s| s.to_string()).collect(),
                v.as_bytes().to_vec(),
            );
            self
        }
    }

    impl RequestFacts for Facts {
        fn header(&self, name: &str) -> Option<String> {
            self.headers.get(name).cloned()
        }
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            self.properties.get(&key).cloned()
        }
    }

    fn resolver(json: &str) -> TenantResolver {
        let raw: RawTenant = serde_json::from_str(json).unwrap();
        TenantResolver::new(&raw).unwrap()
    }

    fn jwt(payload: &str) -> String {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "Bearer {}.{}.{}",
            enc.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            enc.encode(payload),
            enc.encode("sig")
        )
    }

    #[test]
    fn default_is_anonymous() {
        let r = TenantResolver::default();
        let t = r.resolve(&Facts::default().header("x-tenant-id", "acme"));
        assert_eq!(t.id, "anonymous");
        assert_eq!(t.source, TenantSource::Default);
    }

    #[test]
    fn sources_are_tried_in_order() {
        let r = resolver(
            r#"{"sources": [{"from": "header", "name": "X-Tenant-Id"}, {"from": "api_key_hash"}],
                "default": "nobody"}"#,
        );
        let t = r.resolve(
            &Facts::default()
                .header("x-tenant-id", " acme ")
                .header("x-api-key", "sk-1"),
        );
        assert_eq!((t.id.as_str(), t.source), ("acme", TenantSource::Header));
        let t = r.resolve(&Facts::default().header("x-api-key", "sk-1"));
        assert_eq!(t.source, TenantSource::ApiKeyHash);
        assert_eq!(t.id, hash_key("sk-1"));
        let t = r.resolve(&Facts::default().header("x-tenant-id", "   "));
        assert_eq!((t.id.as_str(), t.source), ("nobody", TenantSource::Default));
    }

    #[test]
    fn api_key_hash_never_contains_the_key() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
        let r = resolver(r#"{"sources": [{"from": "api_key_hash"}]}"#);
        for facts in [
            Facts::default().header("authorization", &format!("Bearer {key}")),
            Facts::default().header("x-api-key", key),
            Facts::default().header("api-key", key),
            Facts::default().header("x-goog-api-key", key),
            Facts::default().header(
                ":path",
                &format!("/v1beta/models/g:generateContent?alt=sse&key={key}"),
            ),
        ] {
            let t = r.resolve(&facts);
            assert_eq!(t.source, TenantSource::ApiKeyHash);
            assert!(!t.id.contains("abcdef"), "{}", t.id);
            assert_eq!(t.id.len(), 4 + 24);
            assert_eq!(t.id, hash_key(key));
        }
        // a known SHA-256 prefix: sha256("abc") = ba7816bf8f01cfea414140de...
        assert_eq!(hash_key("abc"), "key:ba7816bf8f01cfea414140de");
    }

    #[test]
    fn unverified_jwt_claims() {
        let r = resolver(r#"{"sources": [{"from": "unverified_jwt", "claim": "org.id"}]}"#);
        let t = r.resolve(
            &Facts::default().header("authorization", &jwt(r#"{"sub":"u1","org":{"id":"acme"}}"#)),
        );
        assert_eq!(
            (t.id.as_str(), t.source),
            ("acme", TenantSource::UnverifiedJwt)
        );
        let r = resolver(
            r#"{"sources": [{"from": "unverified_jwt", "claim": "https://x.io/tenant"}]}"#,
        );
        let t = r.resolve(
            &Facts::default().header("authorization", &jwt(r#"{"https://x.io/tenant": 42}"#)),
        );
        assert_eq!(t.id, "42");
        // not a JWT, or no such claim: next source / default
        for h in [
            "Bearer sk-abc",
            "Basic dTpw",
            "Bearer a.!!!.c",
            &jwt(r#"{"sub":"u1"}"#),
            &jwt("[1]"),
        ] {
            assert_eq!(
                r.resolve(&Facts::default().header("authorization", h))
                    .source,
                TenantSource::Default,
                "{h}"
            );
        }
    }

    #[test]
    fn jwt_metadata_and_properties() {
        let r = resolver(
            r#"{"sources": [{"from": "jwt_metadata", "key": "jwt_payload", "claim": "tenant"},
                            {"from": "peer_principal"},
                            {"from": "property", "path": ["connection", "requested_server_name"]}]}"#,
        );
        let facts = Facts::default().property(
            &[
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                "jwt_payload",
                "tenant",
            ],
            "acme",
        );
        assert_eq!(r.resolve(&facts).source, TenantSource::JwtMetadata);
        let spiffe = "spiffe://cluster.local/ns/team-a/sa/app";
        let facts = Facts::default().property(&["connection", "uri_san_peer_certificate"], spiffe);
        let t = r.resolve(&facts);
        assert_eq!(
            (t.id.as_str(), t.source),
            (spiffe, TenantSource::PeerPrincipal)
        );
        let facts =
            Facts::default().property(&["connection", "requested_server_name"], "llm.acme.io");
        assert_eq!(r.resolve(&facts).id, "llm.acme.io");
        // nested claim by dotted path
        let r =
            resolver(r#"{"sources": [{"from": "jwt_metadata", "key": "p", "claim": "org.id"}]}"#);
        let facts = Facts::default().property(
            &[
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                "p",
                "org",
                "id",
            ],
            "acme",
        );
        assert_eq!(r.resolve(&facts).id, "acme");
    }

    #[test]
    fn numeric_claims_and_properties_become_text() {
        assert_eq!(property_text(&42.0f64.to_le_bytes()).as_deref(), Some("42"));
        assert_eq!(property_text(&1.5f64.to_le_bytes()).as_deref(), Some("1.5"));
        assert_eq!(property_text(b"acme").as_deref(), Some("acme"));
        assert_eq!(property_text(&f64::NAN.to_le_bytes()), None);
        // a nested object comes back in the host's pairs encoding: not an identity
        assert_eq!(
            property_text(&[1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'i', b'd', 0, b'x', 0]),
            None
        );
    }

    #[test]
    fn values_are_cleaned_and_bounded() {
        let r = resolver(r#"{"sources": [{"from": "header", "name": "t"}]}"#);
        let long = "é".repeat(200);
        let t = r.resolve(&Facts::default().header("t", &long));
        assert!(t.id.len() <= MAX_TENANT_BYTES && t.id.chars().all(|c| c == 'é'));
        let t = r.resolve(&Facts::default().header("t", "a\u{0}b\nc"));
        assert_eq!(t.id, "abc");
    }

    #[test]
    fn bad_config_names_the_field() {
        let bad = [
            (
                r#"{"sources": [{"from": "header", "name": ""}]}"#,
                "tenant.sources[0].name",
            ),
            (
                r#"{"sources": [{"from": "api_key_hash"}, {"from": "property", "path": []}]}"#,
                "tenant.sources[1].path",
            ),
            (r#"{"default": ""}"#, "tenant.default"),
        ];
        for (json, field) in bad {
            let raw: RawTenant = serde_json::from_str(json).unwrap();
            let e = TenantResolver::new(&raw).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(serde_json::from_str::<RawTenant>(r#"{"sources": [{"from": "cookie"}]}"#).is_err());
        assert!(serde_json::from_str::<RawTenant>(
            r#"{"sources": [{"from": "header", "name": "a", "x": 1}]}"#
        )
        .is_err());
    }
}
