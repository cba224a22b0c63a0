//! Trace signatures: an Ed25519 key pair held by the host, a signature over everything a finished
//! trace records, stored in its `run_status` table.
//!
//! The hash chain proves that a trace is internally consistent, not who wrote it: anyone with
//! write access can edit an event and recompute every later hash. A signature made with a key
//! only the host holds is the evidence that the holder did not edit the trace after the run.
//!
//! Key files are text: the secret key file holds `xdv-ed25519-secret-key ` and the 32-byte
//! Ed25519 seed as 64 lower-case hex digits; the public key file `xdv-ed25519-public-key ` and
//! the 32-byte public key as 64 hex digits; each ends with a newline. Bare 64-digit hex is read
//! too (as the kind the caller asked for).
//!
//! The signed message ([`message`]) binds the header's canonical encoding, the event count, the
//! final chain hash (which covers every event body and, through the genesis, the header again),
//! the digest of the `modules` table and the resume record. The Resource_Table is covered through
//! the events: `verify` requires it to equal the table derived from them.

use crate::{sql, TraceError, TraceHeader};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::{Path, PathBuf};
use xdv_core::Hash32;

const SECRET_LABEL: &str = "xdv-ed25519-secret-key";
const PUBLIC_LABEL: &str = "xdv-ed25519-public-key";
/// Domain separation of the signed message (version 1 of its layout).
const MESSAGE_TAG: &[u8] = b"xdv-trace-signature-v1\n";
/// Domain separation of the modules-table digest.
const MODULES_TAG: &[u8] = b"xdv-trace-modules-v1\n";

/// A host's secret signing key.
pub struct SecretKey(SigningKey);

/// A public key that checks trace signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    /// The key of a 32-byte Ed25519 seed (draw it from the operating system's random source).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Reads a secret key file.
    ///
    /// # Errors
    ///
    /// [`TraceError::Key`] when the file cannot be read, is a public key, or is not 64 hex digits
    /// (optionally after the label).
    pub fn read(path: &Path) -> Result<Self, TraceError> {
        read_key(path, SECRET_LABEL, PUBLIC_LABEL, "secret").map(Self::from_seed)
    }

    /// Writes the key pair: the secret key to `path` (readable by its owner only, on Unix) and
    /// the public key to `path` with `.pub` appended. Refuses to replace existing files. Returns
    /// the public key file's path.
    ///
    /// # Errors
    ///
    /// [`TraceError::Key`] when either file exists; [`TraceError::Io`] when one cannot be written.
    pub fn write_pair(&self, path: &Path) -> Result<PathBuf, TraceError> {
        let public = PathBuf::from(format!("{}.pub", path.display()));
        for p in [path, public.as_path()] {
            if p.exists() {
                return Err(TraceError::Key {
                    path: p.display().to_string(),
                    reason: "exists; not replacing a key file".into(),
                });
            }
        }
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| TraceError::Io { path: p, source }
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        {
            use std::io::Write;
            let mut f = opts.open(path).map_err(io(path))?;
            writeln!(f, "{SECRET_LABEL} {}", hex(&self.0.to_bytes())).map_err(io(path))?;
        }
        std::fs::write(&public, format!("{}\n", self.public().to_line())).map_err(io(&public))?;
        Ok(public)
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl PublicKey {
    /// Reads a public key file.
    ///
    /// # Errors
    ///
    /// [`TraceError::Key`] when the file cannot be read, is a secret key, or is not 64 hex digits
    /// (optionally after the label) of a valid Ed25519 point.
    pub fn read(path: &Path) -> Result<Self, TraceError> {
        let bytes = read_key(path, PUBLIC_LABEL, SECRET_LABEL, "public")?;
        Self::from_bytes(&bytes).ok_or_else(|| TraceError::Key {
            path: path.display().to_string(),
            reason: "not a valid Ed25519 public key".into(),
        })
    }

    /// The key of 32 bytes, `None` when they are not a valid Ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(Self)
    }

    /// The key as 64 lower-case hex digits, as stored in a trace's `signed_by`.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// The key as 64 hex digits, `None` when they are not hex or not a valid key.
    pub fn from_hex(s: &str) -> Option<Self> {
        Self::from_bytes(&unhex::<32>(s)?)
    }

    /// The public key file's line (without its newline).
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_LABEL} {}", self.to_hex())
    }

    pub(crate) fn verifies(&self, msg: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a trace's signature says, as `verify` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No signature: the trace's content is evidence only of what its holder chose to keep.
    Unsigned,
    /// A signature that verifies, by this public key (hex).
    Valid {
        /// The signer's public key, 64 hex digits.
        public_key: String,
    },
    /// A signature that does not verify (the trace changed after it was signed, or the
    /// signature rows were forged).
    Invalid {
        /// The public key the trace names, as stored.
        public_key: String,
        /// Why it fails.
        reason: String,
    },
    /// Not checked: verification stopped at an earlier problem.
    NotChecked,
}

impl SignatureStatus {
    /// A line for people: `signed by KEY`, `UNSIGNED`, `signature INVALID …`.
    pub fn describe(&self) -> String {
        match self {
            Self::Unsigned => "UNSIGNED".into(),
            Self::Valid { public_key } => format!("signed by {public_key}"),
            Self::Invalid { public_key, reason } => {
                format!("signature INVALID (names key {public_key}): {reason}")
            }
            Self::NotChecked => "signature not checked".into(),
        }
    }
}

/// The message a trace's signature covers:
///
/// ```text
/// "xdv-trace-signature-v1\n" ‖ BLAKE3(canonical(header)) ‖ event_count (u64 LE) ‖ final_hash
///   ‖ modules_digest ‖ len(resumed_at) (u64 LE) ‖ resumed_at
/// ```
pub fn message(
    header: &TraceHeader,
    event_count: u64,
    final_hash: &Hash32,
    modules_digest: &Hash32,
    resumed_at: &str,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_TAG.len() + 32 * 3 + 16 + resumed_at.len());
    m.extend_from_slice(MESSAGE_TAG);
    m.extend_from_slice(&Hash32::of(&header.canonical()).0);
    m.extend_from_slice(&event_count.to_le_bytes());
    m.extend_from_slice(&final_hash.0);
    m.extend_from_slice(&modules_digest.0);
    m.extend_from_slice(&(resumed_at.len() as u64).to_le_bytes());
    m.extend_from_slice(resumed_at.as_bytes());
    m
}

/// The digest of the `modules` table: BLAKE3 of `"xdv-trace-modules-v1\n"` and, for each row in
/// order of its hash, the 32-byte hash and the size (u64 LE). `verify` checks separately that
/// every row's hash is the BLAKE3 of its bytes and its size their length, so the digest binds
/// the bytes too.
pub(crate) fn modules_digest(rows: &[(Hash32, u64)]) -> Hash32 {
    let mut sorted: Vec<&(Hash32, u64)> = rows.iter().collect();
    sorted.sort_by_key(|r| r.0);
    let mut h = blake3::Hasher::new();
    h.update(MODULES_TAG);
    for (hash, size) in sorted {
        h.update(&hash.0);
        h.update(&size.to_le_bytes());
    }
    Hash32(*h.finalize().as_bytes())
}

/// Signs a finished trace with `key`: verifies it first (it must be intact and complete), then
/// stores the signature and the public key in `run_status` (`signature`, `signed_by`),
/// replacing an earlier signature. Returns the public key.
///
/// # Errors
///
/// [`TraceError::NotATrace`] when the trace does not verify or was cut short;
/// [`TraceError::Sqlite`] when it cannot be written.
pub fn sign_trace(path: &Path, key: &SecretKey) -> Result<PublicKey, TraceError> {
    let reader = crate::TraceReader::open(path)?;
    let (report, msg) = reader.verify_for_signing()?;
    drop(reader);
    let refuse = |reason: String| TraceError::NotATrace {
        path: path.display().to_string(),
        reason,
    };
    if let Some(p) = report.problem {
        return Err(refuse(format!(
            "it does not verify, so it is not signed: {p}"
        )));
    }
    let Some(msg) = msg.filter(|_| report.complete) else {
        return Err(refuse(
            "the run did not finish; only a complete trace is signed".into(),
        ));
    };
    let signature = key.sign(&msg);
    let e = sql(path);
    let mut conn = Connection::open(path).map_err(&e)?;
    let tx = conn.transaction().map_err(&e)?;
    for (k, v) in [
        ("signature", hex(&signature)),
        ("signed_by", key.public().to_hex()),
    ] {
        tx.execute(
            "INSERT OR REPLACE INTO run_status (key, value) VALUES (?1, ?2)",
            params![k, v],
        )
        .map_err(&e)?;
    }
    tx.commit().map_err(&e)?;
    Ok(key.public())
}

fn read_key(path: &Path, label: &str, other: &str, kind: &str) -> Result<[u8; 32], TraceError> {
    let bad = |reason: String| TraceError::Key {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let text = text.trim();
    if text.starts_with(other) {
        return Err(bad(format!(
            "holds a {} key, not the {kind} key asked for",
            if kind == "secret" { "public" } else { "secret" }
        )));
    }
    let digits = text.strip_prefix(label).unwrap_or(text).trim();
    unhex::<32>(digits).ok_or_else(|| {
        bad(format!(
            "not an xdv {kind} key: expected `{label} ` and 64 hex digits"
        ))
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let b = [0xabu8, 0x01, 0xff, 0x00];
        assert_eq!(unhex::<4>(&hex(&b)), Some(b));
        assert_eq!(unhex::<4>("abc"), None);
        assert_eq!(unhex::<2>("zz00"), None);
    }

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let k = SecretKey::from_seed([7; 32]);
        let other = SecretKey::from_seed([8; 32]);
        let sig = k.sign(b"m");
        assert!(k.public().verifies(b"m", &sig));
        assert!(!k.public().verifies(b"n", &sig));
        assert!(!other.public().verifies(b"m", &sig));
    }
}
