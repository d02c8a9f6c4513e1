//! Tokens revoked before they expire: a deny list in one JSON file that every
//! service of an instance reads (`auth.revocations`, by default under
//! `data_dir`, which `sustain up` shares; containers mount one volume). A
//! token is refused when its `jti` is listed, or when its subject is listed
//! and the token was issued at or before that entry. The file is written
//! atomically by the `revoke` command, and a service reads it again within
//! [`CHECK_EVERY`] of a change, so a revocation reaches every service without a
//! restart and survives one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// How often a service looks whether the file changed.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// A single token, by its `jti`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Every token of this subject issued at or before `at`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Whose subject: an issuer's name; empty, any issuer's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// When it was revoked (Unix seconds).
    pub at: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyFile {
    pub revoked: Vec<Revoked>,
}

impl DenyFile {
    /// Reads `path`; a missing file is an empty list.
    pub fn read(path: &Path) -> Result<DenyFile, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: is not a revocation list: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DenyFile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the list to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        super::keys::write_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Why a token is revoked, if it is.
    pub fn refuses(&self, jti: &str, issuer: &str, subject: &str, iat: i64) -> Option<&Revoked> {
        self.revoked.iter().find(|r| {
            (!r.jti.is_empty() && r.jti == jti)
                || (!r.subject.is_empty()
                    && r.subject == subject
                    && (r.issuer.is_empty() || r.issuer == issuer)
                    && iat <= r.at)
        })
    }
}

/// The deny list as a service holds it, following its file.
#[derive(Debug, Clone)]
pub struct DenyList {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    held: RwLock<(Option<SystemTime>, DenyFile)>,
    checked: Mutex<Instant>,
}

impl DenyList {
    /// Nothing is ever revoked: tests and tools without an instance.
    pub fn none() -> DenyList {
        DenyList::holding(None, (None, DenyFile::default()))
    }

    /// Follows the file at `path`. An unreadable file is an error at start-up.
    pub fn new(path: PathBuf) -> Result<DenyList, String> {
        let held = (modified(&path), DenyFile::read(&path)?);
        Ok(DenyList::holding(Some(path), held))
    }

    fn holding(path: Option<PathBuf>, held: (Option<SystemTime>, DenyFile)) -> DenyList {
        DenyList {
            inner: Arc::new(Inner {
                path,
                held: RwLock::new(held),
                checked: Mutex::new(Instant::now()),
            }),
        }
    }

    /// The reason a token is refused, if it is revoked.
    pub fn refuses(&self, jti: &str, issuer: &str, subject: &str, iat: i64) -> Option<String> {
        self.follow();
        let held = self.inner.held.read().ok()?;
        held.1
            .refuses(jti, issuer, subject, iat)
            .map(|r| r.reason.clone())
    }

    /// Reads the file again when it changed since it was last read, looking
    /// at most every [`CHECK_EVERY`]; a file that does not read leaves the
    /// list as it was, with a warning.
    fn follow(&self) {
        let Some(path) = &self.inner.path else {
            return;
        };
        let due = self.inner.checked.try_lock().is_ok_and(|mut last| {
            if last.elapsed() >= CHECK_EVERY {
                *last = Instant::now();
                true
            } else {
                false
            }
        });
        if !due {
            return;
        }
        let now = modified(path);
        let changed = self.inner.held.read().is_ok_and(|h| h.0 != now);
        if !changed {
            return;
        }
        match DenyFile::read(path) {
            Ok(list) => {
                if let Ok(mut held) = self.inner.held.write() {
                    tracing::info!(entries = list.revoked.len(), "revoked tokens read again");
                    *held = (now, list);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the revocation list does not read; keeping the one held")
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_or_a_subject_is_refused_once_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked.json");
        let list = DenyList::new(path.clone()).expect("no file yet");
        assert!(DenyList::none().refuses("t1", "x", "y", 0).is_none());
        assert!(list.refuses("t1", "district-181", "clerk", 100).is_none());
        DenyFile {
            revoked: vec![
                Revoked {
                    jti: "t1".into(),
                    subject: String::new(),
                    issuer: String::new(),
                    at: 150,
                    reason: "laptop lost".into(),
                },
                Revoked {
                    jti: String::new(),
                    subject: "clerk".into(),
                    issuer: "district-181".into(),
                    at: 200,
                    reason: "left the office".into(),
                },
            ],
        }
        .write(&path)
        .expect("write");
        std::thread::sleep(CHECK_EVERY);
        assert_eq!(
            list.refuses("t1", "x", "y", 0).as_deref(),
            Some("laptop lost")
        );
        assert_eq!(
            list.refuses("t2", "district-181", "clerk", 200).as_deref(),
            Some("left the office")
        );
        assert!(
            list.refuses("t3", "district-181", "clerk", 201).is_none(),
            "issued after"
        );
        assert!(
            list.refuses("t4", "district-185", "clerk", 100).is_none(),
            "another issuer's clerk"
        );
        // A restart reads the same list.
        let again = DenyList::new(path).expect("reads");
        assert!(again.refuses("t1", "x", "y", 0).is_some());
    }
}
