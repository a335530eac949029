//! Password hashing (argon2id) behind an injectable trait, and session tokens.
//!
//! Argon2id is deliberately slow and memory-hard, so [`Argon2Hasher`] never
//! runs on the caller's task: it hands the work to a small pool of its own OS
//! threads and awaits the answer on a channel. That keeps async workers free
//! without tying `kith-core` to a particular runtime.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Hashes and verifies passwords. Injectable: servers use [`Argon2Hasher`]
/// with strong parameters, tests use it with cheap ones.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes `password` into a self-describing string (a PHC string for argon2).
    ///
    /// # Errors
    /// [`Error::Internal`] if the hasher fails.
    async fn hash(&self, password: &str) -> Result<String>;

    /// Whether `password` matches `hash`, a string produced by [`Self::hash`].
    ///
    /// # Errors
    /// [`Error::Internal`] if the hasher fails; a malformed hash is a mismatch.
    async fn verify(&self, password: &str, hash: &str) -> Result<bool>;
}

type Job = Box<dyn FnOnce() + Send>;

/// Argon2id on a dedicated thread pool.
pub struct Argon2Hasher {
    params: Params,
    threads: usize,
    pool: OnceLock<mpsc::Sender<Job>>,
}

impl Default for Argon2Hasher {
    /// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self::new(Params::new(19 * 1024, 2, 1, None).unwrap_or_default())
    }
}

impl Argon2Hasher {
    /// A hasher with the given argon2 parameters and one worker thread per core
    /// (at most four).
    pub fn new(params: Params) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get().min(4))
            .unwrap_or(1);
        Self {
            params,
            threads,
            pool: OnceLock::new(),
        }
    }

    /// The cheapest parameters argon2id accepts (8 KiB, 1 pass). Still real
    /// argon2id, but offers no protection: for tests only.
    pub fn insecure_for_tests() -> Self {
        Self::new(Params::new(8, 1, 1, None).unwrap_or_default())
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Runs `f` on the worker pool (started on first use) and awaits its result.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = futures::channel::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.pool
            .get_or_init(|| start_pool(self.threads))
            .send(job)
            .map_err(|_| Error::Internal("password hashing pool stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("password hashing failed".into()))
    }
}

fn start_pool(threads: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new()
            .name(format!("kith-argon2-{i}"))
            .spawn(move || loop {
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                match job {
                    // A panicking job drops its reply sender, which the caller
                    // sees as an error; the worker itself carries on.
                    Ok(job) => drop(std::panic::catch_unwind(AssertUnwindSafe(job))),
                    Err(_) => return, // the hasher was dropped
                }
            });
        // If no thread could be spawned at all, jobs fail with Error::Internal.
        drop(spawned);
    }
    tx
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str) -> Result<String> {
        let argon2 = self.argon2();
        let password = password.to_owned();
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        self.run(move || {
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await?
        .map_err(Error::Internal)
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool> {
        let argon2 = self.argon2();
        let password = password.to_owned();
        let hash = hash.to_owned();
        self.run(move || match PasswordHash::new(&hash) {
            Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        })
        .await
    }
}

/// A freshly issued session token: the secret for the client, and the digest
/// that storage keeps.
pub(crate) struct IssuedToken {
    pub secret: String,
    pub digest: [u8; 32],
}

/// Length in bytes of a session token's randomness (hex-encoded to twice that).
const TOKEN_BYTES: usize = 32;

/// Issues an opaque random token. Tokens are 256 random bits, so a fast
/// SHA-256 digest (not a slow KDF) is the right thing to store: there is
/// nothing to brute-force.
pub(crate) fn issue_token() -> Result<IssuedToken> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let digest = token_digest(&secret);
    Ok(IssuedToken { secret, digest })
}

/// Whether `token` has the shape of a token Kith issued.
pub(crate) fn is_well_formed_token(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest under which a token is stored.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let h = Argon2Hasher::insecure_for_tests();
        let a = h.hash("correct horse").await.unwrap();
        let b = h.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(h.verify("correct horse", &a).await.unwrap());
        assert!(!h.verify("wrong horse", &a).await.unwrap());
        assert!(!h.verify("correct horse", "not a hash").await.unwrap());
    }

    #[test]
    fn tokens_are_random_hex_and_digests_match() {
        let a = issue_token().unwrap();
        let b = issue_token().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(is_well_formed_token(&a.secret));
        assert_eq!(token_digest(&a.secret), a.digest);
        assert!(!is_well_formed_token("short"));
    }
}
