//! MTA-STS (RFC 8461) for direct and mixed mode (issue #23): which policy a recipient domain
//! publishes. Discovery asks the `_mta-sts` TXT record through direct mode's resolver (handed in
//! as a [`Resolve`], since `engine::dns` owns hickory), fetches
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` through the one HTTP client (`fetch.rs`),
//! parses it (`policy.rs`, pure) and keeps it in the store by domain, id, fetch time and
//! `max_age`, so a run and the next campaign reuse it. Within a run each domain is discovered
//! once, however many recipients ask at once. Never connects to a mail server and never decides
//! how to deliver: the direct router asks and applies the answer. Written by hand because
//! mail-auth parses the TXT record but fetches no policy, and its cache is not our store.

mod fetch;
pub mod policy;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

pub use policy::{Mode, Policy};

use crate::delivery::now_ms;
use crate::store::{Store, StoredStsPolicy};

/// The DNS questions MTA-STS asks, answered by direct mode's resolver (`[direct] nameservers`
/// or the system's).
pub trait Resolve: Send + Sync + 'static {
    /// The TXT records at `name`, character-strings joined (RFC 8461 §3.1); an empty list when
    /// the name has none; Err when the DNS gave no usable answer.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// An address of `host`, for connecting to the policy host.
    fn address(&self, host: &str) -> impl Future<Output = Result<IpAddr, String>> + Send;
}

/// How policies are fetched.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database the cache lives in.
    pub db: PathBuf,
    /// Also trusted for policy hosts (`[direct] ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    /// 443 but in tests (`[direct] mta_sts_port`).
    pub https_port: u16,
    /// The bound on one discovery's fetch (RFC 8461 §3.3 asks for one).
    pub timeout: Duration,
}

/// A domain's policy as a run applies it: None when it has none in force (no record, a policy
/// that cannot be fetched and is not cached, or `mode: none`).
pub type Found = Option<Arc<Policy>>;

/// The policies of one run: the store's cache, and one discovery per domain.
pub struct Policies<R: Resolve> {
    resolver: Arc<R>,
    settings: Settings,
    store: Arc<Mutex<Option<Store>>>,
    found: Mutex<HashMap<String, Arc<OnceCell<Found>>>>,
}

/// A policy read back from the cache, with the id it was fetched under and until when it holds.
#[derive(Debug, Clone, PartialEq)]
struct Cached {
    id: String,
    policy: Policy,
    expires_at_ms: i64,
}

/// What discovery does next, given the live TXT id and the cache (RFC 8461 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    UseCached,
    Fetch,
    Absent,
}

fn step(live_id: Option<&str>, cached: Option<&Cached>, now_ms: i64) -> Step {
    let fresh = cached.filter(|cached| cached.expires_at_ms > now_ms);
    match (live_id, fresh) {
        // The same id and unexpired: nothing changed.
        (Some(id), Some(cached)) if cached.id == id => Step::UseCached,
        (Some(_), _) => Step::Fetch,
        // No live record (removed, or the DNS failed): an unexpired policy still holds, which
        // is what stops an attacker who strips the record from downgrading delivery.
        (None, Some(_)) => Step::UseCached,
        (None, None) => Step::Absent,
    }
}

impl<R: Resolve> Policies<R> {
    pub fn new(resolver: Arc<R>, settings: Settings) -> Policies<R> {
        Policies {
            resolver,
            settings,
            store: Arc::new(Mutex::new(None)),
            found: Mutex::new(HashMap::new()),
        }
    }

    /// The policy `domain` (ASCII) has in force. Concurrent callers for one domain share one
    /// discovery; later callers in the run get its answer.
    pub async fn policy(&self, domain: &str) -> Found {
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        // An address literal (RFC 5321 §4.1.3) names no domain that could publish a policy.
        if key.starts_with('[') {
            return None;
        }
        let cell = {
            let mut found = self
                .found
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(found.entry(key.clone()).or_default())
        };
        cell.get_or_init(|| self.discover(key)).await.clone()
    }

    async fn discover(&self, domain: String) -> Found {
        let cached = self.cached(&domain).await;
        let live_id = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => policy::txt_id(&records),
            Err(reason) => {
                tracing::info!(%domain, %reason, "MTA-STS record could not be looked up");
                None
            }
        };
        let chosen = match step(live_id.as_deref(), cached.as_ref(), now_ms()) {
            Step::UseCached => cached.map(|cached| cached.policy),
            Step::Absent => None,
            Step::Fetch => {
                let id = live_id.unwrap_or_default();
                match self.fetch(&domain, &id).await {
                    Some(policy) => Some(policy),
                    // RFC 8461 §5.1: a policy that cannot be fetched leaves the cached one in
                    // force while it is unexpired, else delivery goes on as without a policy.
                    None => cached
                        .filter(|cached| cached.expires_at_ms > now_ms())
                        .map(|cached| cached.policy),
                }
            }
        };
        chosen
            .filter(|policy| policy.mode != Mode::None)
            .map(Arc::new)
    }

    /// Fetches and caches `domain`'s policy; None (logged) when it cannot be had.
    async fn fetch(&self, domain: &str, id: &str) -> Option<Policy> {
        let fetched = fetch::policy(self.resolver.as_ref(), domain, &self.settings).await;
        let (policy, body) = match fetched {
            Ok(fetched) => fetched,
            Err(reason) => {
                tracing::warn!(%domain, %reason, "MTA-STS policy could not be fetched");
                return None;
            }
        };
        let stored = StoredStsPolicy {
            id: id.to_string(),
            fetched_at_ms: now_ms(),
            max_age_secs: policy.max_age_secs,
            body,
        };
        let domain_key = domain.to_string();
        if let Err(reason) = self
            .with_store(move |store| store.save_mta_sts_policy(&domain_key, &stored))
            .await
        {
            tracing::warn!(%domain, %reason, "MTA-STS policy could not be cached");
        }
        tracing::info!(%domain, %id, mode = policy.mode.as_str(), "MTA-STS policy fetched");
        Some(policy)
    }

    /// The cached policy of `domain`, if one is stored and still parses.
    async fn cached(&self, domain: &str) -> Option<Cached> {
        let key = domain.to_string();
        let stored = match self
            .with_store(move |store| store.mta_sts_policy(&key))
            .await
        {
            Ok(stored) => stored?,
            Err(reason) => {
                tracing::warn!(%domain, %reason, "MTA-STS cache could not be read");
                return None;
            }
        };
        let policy = policy::parse_policy(&stored.body).ok()?;
        let max_age_ms = i64::try_from(stored.max_age_secs.saturating_mul(1_000)).ok()?;
        Some(Cached {
            id: stored.id,
            policy,
            expires_at_ms: stored.fetched_at_ms.saturating_add(max_age_ms),
        })
    }

    /// Runs `work` on the cache's own connection, off the async threads (a write syncs).
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = Arc::clone(&self.store);
        let db = self.settings.db.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut slot = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if slot.is_none() {
                *slot = Some(Store::open(&db).map_err(|error| error.to_string())?);
            }
            match slot.as_ref() {
                Some(store) => work(store).map_err(|error| error.to_string()),
                None => Err("the cache is not open".to_string()),
            }
        })
        .await;
        joined.map_err(|error| error.to_string())?
    }
}

/// Reads `[direct] ca_file` and checks that it holds a certificate the TLS module can trust;
/// the error is a sentence naming the file (for `herald check` and the run's start).
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|error| {
        format!(
            "direct.ca_file: the file cannot be read: {error} ({})",
            path.display()
        )
    })?;
    crate::tls::verified_config(Some(&pem))
        .map_err(|reason| format!("direct.ca_file: {reason} ({})", path.display()))?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(id: &str, expires_at_ms: i64) -> Cached {
        Cached {
            id: id.into(),
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["mx.example.org".into()],
                max_age_secs: 60,
            },
            expires_at_ms,
        }
    }

    #[test]
    fn discovery_follows_rfc_8461_section_5_1() {
        let now = 1_000_000;
        let fresh = cached("a1", now + 1);
        let expired = cached("a1", now - 1);
        let check = |live: Option<&str>, cache: Option<&Cached>, expected: Step| {
            assert_eq!(step(live, cache, now), expected, "{live:?} {cache:?}");
        };
        check(Some("a1"), Some(&fresh), Step::UseCached);
        // A changed id, an expired cache, or nothing cached: fetch.
        check(Some("b2"), Some(&fresh), Step::Fetch);
        check(Some("a1"), Some(&expired), Step::Fetch);
        check(Some("a1"), None, Step::Fetch);
        // The record is gone or unreadable: an unexpired policy still holds.
        check(None, Some(&fresh), Step::UseCached);
        check(None, Some(&expired), Step::Absent);
        check(None, None, Step::Absent);
    }
}
