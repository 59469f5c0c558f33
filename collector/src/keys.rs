//! API keys of the query API: created and revoked with `tollgate-collector keys ...`, stored as
//! SHA-256 digests (the key itself is shown once, at creation), each with a role and an optional
//! set of tenants it is limited to. Keys live in a small SQLite table beside the collector's own
//! state, whatever the trace storage backend is.
//!
//! Roles: `viewer` reads aggregates (`/v1/usage`, `/v1/findings`); `operator` also reads
//! individual traces (`/v1/traces`); `admin` also lists keys (`/v1/keys`). A tenant-scoped key
//! sees only its tenants' data on every endpoint.

use crate::storage::TenantScope;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

/// What a key may do, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling: a role and the tenants they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    pub scope: TenantScope,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Empty: all tenants.
    pub tenants: Vec<String>,
    pub created_unix: i64,
    pub revoked: bool,
}

/// Key store errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The key table.
pub struct KeyStore {
    conn: Mutex<Connection>,
}

fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.trim().as_bytes()).to_vec()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}

impl KeyStore {
    /// Opens (creating) the key table in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| KeyError::Invalid(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS api_keys (
                id TEXT PRIMARY KEY,
                digest BLOB NOT NULL UNIQUE,
                name TEXT NOT NULL,
                role TEXT NOT NULL,
                tenants TEXT NOT NULL,
                created_unix INTEGER NOT NULL,
                revoked INTEGER NOT NULL DEFAULT 0
            )",
        )?;
        Ok(KeyStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, KeyError> {
        self.conn
            .lock()
            .map_err(|_| KeyError::Invalid("key store lock poisoned".into()))
    }

    /// Creates a key; returns its id and the secret key (shown once).
    pub fn create(
        &self,
        name: &str,
        role: Role,
        tenants: &[String],
    ) -> Result<(String, String), KeyError> {
        if name.trim().is_empty() {
            return Err(KeyError::Invalid("a key needs a name".into()));
        }
        if tenants.iter().any(|t| t.trim().is_empty()) {
            return Err(KeyError::Invalid("tenant names must not be empty".into()));
        }
        let id = random_hex(4);
        let key = format!("tgk_{id}_{}", random_hex(20));
        let tenants_json = serde_json::to_string(tenants).unwrap_or_else(|_| "[]".into());
        self.conn()?.execute(
            "INSERT INTO api_keys (id, digest, name, role, tenants, created_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, digest(&key), name.trim(), role.as_str(), tenants_json, now_unix()],
        )?;
        Ok((id, key))
    }

    /// Every key, newest first.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, role, tenants, created_unix, revoked FROM api_keys ORDER BY created_unix DESC, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                role: Role::parse(&r.get::<_, String>(2)?).unwrap_or(Role::Viewer),
                tenants: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                created_unix: r.get(4)?,
                revoked: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a key by id; false when there is no such key.
    pub fn revoke(&self, id: &str) -> Result<bool, KeyError> {
        let n = self
            .conn()?
            .execute("UPDATE api_keys SET revoked = 1 WHERE id = ?1", params![id])?;
        Ok(n > 0)
    }

    /// Whether any key exists (revoked or not).
    pub fn any(&self) -> Result<bool, KeyError> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// The caller a presented key stands for, if it is a live key.
    pub fn authenticate(&self, key: &str) -> Result<Option<Caller>, KeyError> {
        let row: Option<(String, String, String, bool)> = self
            .conn()?
            .query_row(
                "SELECT id, role, tenants, revoked FROM api_keys WHERE digest = ?1",
                params![digest(key)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        Ok(row.and_then(|(id, role, tenants, revoked)| {
            if revoked {
                return None;
            }
            let tenants: Vec<String> = serde_json::from_str(&tenants).unwrap_or_default();
            Some(Caller {
                key_id: id,
                role: Role::parse(&role)?,
                scope: if tenants.is_empty() {
                    TenantScope::All
                } else {
                    TenantScope::Only(tenants)
                },
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_authenticate_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("k.db")).unwrap();
        assert!(!store.any().unwrap());
        let (id, key) = store
            .create("dashboards", Role::Viewer, &["acme".into()])
            .unwrap();
        assert!(key.starts_with(&format!("tgk_{id}_")) && key.len() > 40);
        let c = store.authenticate(&key).unwrap().unwrap();
        assert_eq!(
            (c.role, c.scope.clone()),
            (Role::Viewer, TenantScope::Only(vec!["acme".into()]))
        );
        assert!(store.authenticate("tgk_nope").unwrap().is_none());
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            !format!("{listed:?}").contains(&key[9..]),
            "the secret is never listed"
        );
        assert!(store.revoke(&id).unwrap());
        assert!(store.authenticate(&key).unwrap().is_none(), "revoked");
        assert!(!store.revoke("missing").unwrap());
        assert!(store.create(" ", Role::Admin, &[]).is_err());
    }
}
