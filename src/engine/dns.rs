//! Where mail for a domain goes: MX lookups over hickory (the only place Herald uses it), the
//! RFC 5321 §5.1 rules (MX by preference, A/AAAA when there is no MX, null MX per RFC 7505),
//! resolution of MX host names to addresses, and a per-domain cache that honours the TTL and
//! makes concurrent askers share one lookup. Must never connect to a mail server or touch the
//! store: it only answers "which addresses, in which order" or "why not".

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use tokio::sync::OnceCell;

/// Why a domain cannot be delivered to (now or ever).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The domain does not take mail: NXDOMAIN, null MX, no MX and no address.
    #[error("{0}")]
    Permanent(String),
    /// Try again later: timeouts, SERVFAIL, no MX host resolving right now.
    #[error("{0}")]
    Temporary(String),
}

/// One mail exchanger with its addresses (IPv4 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Why `addresses` is empty, when it is.
    pub problem: Option<String>,
}

/// The mail exchangers of a domain, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub hosts: Vec<MxHost>,
    /// True when the domain has no MX and its own address is the mail host (RFC 5321 §5.1).
    pub implicit: bool,
}

/// How long answers are kept when the DNS gives no TTL (negative answers without SOA).
const NEGATIVE_TTL: Duration = Duration::from_secs(300);
/// Temporary failures are remembered only briefly: the next claim should ask again.
const TEMPORARY_TTL: Duration = Duration::from_secs(2);
/// Never trust a TTL beyond this; a long campaign should notice a moved MX.
const MAX_TTL: Duration = Duration::from_secs(3_600);

type Answer = (Result<Destination, DnsError>, Instant);

/// The MX resolver with its cache. Cheap to share behind an `Arc`.
pub struct MxResolver {
    resolver: TokioResolver,
    cache: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up the DNS resolver: {0}")]
pub struct ResolverError(String);

impl MxResolver {
    /// A resolver asking `nameservers` (UDP, then TCP for long answers), or the system's
    /// configured ones when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout_secs: u32) -> Result<MxResolver, ResolverError> {
        Ok(MxResolver {
            resolver: build_resolver(nameservers, timeout_secs)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Where mail for `domain` (ASCII form, as `EmailAddress::domain` gives it) goes. One lookup
    /// per domain at a time: concurrent callers wait for the same answer, later ones read the
    /// cache until the TTL runs out.
    pub async fn destination(&self, domain: &str) -> Result<Destination, DnsError> {
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        let cell = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let fresh = cache.get(&key).filter(|cell| match cell.get() {
                Some((_, until)) => *until > Instant::now(),
                // Still being looked up: share it.
                None => true,
            });
            match fresh {
                Some(cell) => Arc::clone(cell),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    cache.insert(key.clone(), Arc::clone(&cell));
                    cell
                }
            }
        };
        let (answer, _) = cell.get_or_init(|| self.look_up(key.clone())).await;
        answer.clone()
    }

    async fn look_up(&self, domain: String) -> Answer {
        let started = Instant::now();
        let answer = self.resolve(&domain).await;
        let ttl = match &answer {
            Ok((_, ttl)) => *ttl,
            Err(DnsError::Permanent(_)) => NEGATIVE_TTL,
            Err(DnsError::Temporary(_)) => TEMPORARY_TTL,
        };
        tracing::debug!(%domain, elapsed_ms = started.elapsed().as_millis() as u64, ok = answer.is_ok(), "MX lookup");
        (answer.map(|(destination, _)| destination), started + ttl)
    }

    async fn resolve(&self, domain: &str) -> Result<(Destination, Duration), DnsError> {
        // RFC 5321 §4.1.3: an address literal names the host itself.
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let text = literal.strip_prefix("IPv6:").unwrap_or(literal);
            let Ok(ip) = text.parse::<IpAddr>() else {
                return Err(DnsError::Permanent(format!(
                    "the address literal {domain} is not an IP address"
                )));
            };
            let host = MxHost {
                name: ip.to_string(),
                addresses: vec![ip],
                problem: None,
            };
            return Ok((
                Destination {
                    hosts: vec![host],
                    implicit: true,
                },
                MAX_TTL,
            ));
        }
        let fqdn = format!("{domain}.");
        match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut records = Vec::new();
                let mut ttl = MAX_TTL;
                for record in lookup.answers() {
                    if let RData::MX(mx) = &record.data {
                        ttl = ttl.min(Duration::from_secs(u64::from(record.ttl)));
                        let exchange = mx.exchange.to_ascii();
                        records.push((mx.preference, exchange));
                    }
                }
                if is_null_mx(&records) {
                    return Err(DnsError::Permanent(format!(
                        "{domain} does not accept mail (null MX, RFC 7505)"
                    )));
                }
                if records.is_empty() {
                    // A CNAME chain ending nowhere: behave as if there were no MX.
                    return self.implicit_mx(domain).await;
                }
                let names = order_mx(records, random_seed());
                let hosts = self.resolve_hosts(names).await;
                if hosts.iter().all(|host| host.addresses.is_empty()) {
                    let reasons = hosts
                        .iter()
                        .filter_map(|host| host.problem.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(DnsError::Temporary(format!(
                        "no mail server of {domain} has an address ({reasons})"
                    )));
                }
                Ok((
                    Destination {
                        hosts,
                        implicit: false,
                    },
                    ttl.max(Duration::from_secs(1)),
                ))
            }
            Err(error) if error.is_nx_domain() => Err(DnsError::Permanent(format!(
                "the domain {domain} does not exist (NXDOMAIN)"
            ))),
            // RFC 5321 §5.1: no MX records means the domain's own address is the mail host.
            Err(error) if error.is_no_records_found() => self.implicit_mx(domain).await,
            Err(error) => Err(DnsError::Temporary(describe(domain, "MX", &error))),
        }
    }

    async fn implicit_mx(&self, domain: &str) -> Result<(Destination, Duration), DnsError> {
        match self.resolver.lookup_ip(format!("{domain}.")).await {
            Ok(lookup) => {
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_secs(1), MAX_TTL);
                let addresses = order_addresses(lookup.iter().collect());
                if addresses.is_empty() {
                    return Err(DnsError::Permanent(no_mail_host(domain)));
                }
                Ok((
                    Destination {
                        hosts: vec![MxHost {
                            name: domain.to_string(),
                            addresses,
                            problem: None,
                        }],
                        implicit: true,
                    },
                    ttl,
                ))
            }
            Err(error) if error.is_nx_domain() => Err(DnsError::Permanent(format!(
                "the domain {domain} does not exist (NXDOMAIN)"
            ))),
            Err(error) if error.is_no_records_found() => {
                Err(DnsError::Permanent(no_mail_host(domain)))
            }
            Err(error) => Err(DnsError::Temporary(describe(domain, "A/AAAA", &error))),
        }
    }

    /// Resolves every MX host at once: twenty hosts cost one round trip, not twenty.
    async fn resolve_hosts(&self, names: Vec<String>) -> Vec<MxHost> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, name) in names.iter().enumerate() {
            let resolver = self.resolver.clone();
            let name = name.clone();
            tasks.spawn(async move { (index, resolve_host(&resolver, &name).await) });
        }
        let mut hosts: Vec<Option<MxHost>> = vec![None; names.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, host)) = joined
                && let Some(slot) = hosts.get_mut(index)
            {
                *slot = Some(host);
            }
        }
        hosts
            .into_iter()
            .zip(names)
            .map(|(host, name)| {
                host.unwrap_or(MxHost {
                    name,
                    addresses: Vec::new(),
                    problem: Some("the lookup task failed".into()),
                })
            })
            .collect()
    }
}

/// The hickory resolver direct mode uses: `nameservers` (UDP, then TCP for long answers), or
/// the system's configured ones when the list is empty. The deliverability checks (`dnsauth`)
/// ask through the same one, so `[direct] nameservers` points both at a DNS of the user's own
/// (issue #23 §3). Its small answer cache is what makes a name asked twice in one check cost one
/// round trip.
pub fn build_resolver(
    nameservers: &[SocketAddr],
    timeout_secs: u32,
) -> Result<TokioResolver, ResolverError> {
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(u64::from(timeout_secs.max(1)));
    options.attempts = 1;
    // IPv4 first: most MX hosts have it, and many hosts have no working IPv6 route.
    options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    // Our own cache keys by domain; hickory's stays small and only spares repeated hosts.
    options.cache_size = 1_024;
    let builder = if nameservers.is_empty() {
        let mut builder =
            TokioResolver::builder_tokio().map_err(|error| ResolverError(error.to_string()))?;
        let system = builder.options_mut();
        system.timeout = options.timeout;
        system.attempts = options.attempts;
        system.ip_strategy = options.ip_strategy;
        builder
    } else {
        let servers = nameservers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], servers);
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
    };
    builder
        .build()
        .map_err(|error| ResolverError(error.to_string()))
}

/// Why a TXT lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtError {
    /// The name does not exist or has no TXT record: an answer, not a failure.
    NotFound,
    /// No usable answer (timeout, SERVFAIL, refused, no network): nothing is known.
    Failed(String),
}

/// The TXT records at `name`, each one's character-strings joined without separators, as SPF
/// (RFC 7208 §3.3) and DKIM (RFC 6376 §3.6.2.2) read them. Bytes that are not UTF-8 are
/// replaced, which no record of either kind contains.
pub async fn txt_records(resolver: &TokioResolver, name: &str) -> Result<Vec<String>, TxtError> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match resolver.txt_lookup(fqdn.as_str()).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(error) if error.is_nx_domain() || error.is_no_records_found() => {
            Err(TxtError::NotFound)
        }
        Err(error) => Err(TxtError::Failed(describe(name, "TXT", &error))),
    }
}

/// MTA-STS (issue #23) asks through the same resolver as the MX lookups, so `[direct]
/// nameservers` decides where policies are discovered and their hosts found.
impl crate::mtasts::Resolve for MxResolver {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match txt_records(&self.resolver, name).await {
            Ok(records) => Ok(records),
            Err(TxtError::NotFound) => Ok(Vec::new()),
            Err(TxtError::Failed(reason)) => Err(reason),
        }
    }

    async fn address(&self, host: &str) -> Result<IpAddr, String> {
        let found = resolve_host(&self.resolver, host).await;
        match (found.addresses.first(), found.problem) {
            (Some(address), _) => Ok(*address),
            (None, problem) => Err(problem.unwrap_or_else(|| format!("{host} has no address"))),
        }
    }
}

async fn resolve_host(resolver: &TokioResolver, name: &str) -> MxHost {
    let bare = name.trim_end_matches('.');
    // RFC 5321 §5.1 wants a host name here, but some zones put an address: use it as meant.
    if let Ok(ip) = bare
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return MxHost {
            name: bare.to_string(),
            addresses: vec![ip],
            problem: None,
        };
    }
    match resolver.lookup_ip(format!("{bare}.")).await {
        Ok(lookup) => {
            let addresses = order_addresses(lookup.iter().collect());
            let problem = addresses
                .is_empty()
                .then(|| format!("{bare} has no address"));
            MxHost {
                name: bare.to_string(),
                addresses,
                problem,
            }
        }
        Err(error) => MxHost {
            name: bare.to_string(),
            addresses: Vec::new(),
            problem: Some(if error.is_no_records_found() {
                format!("{bare} does not resolve")
            } else {
                describe(bare, "A/AAAA", &error)
            }),
        },
    }
}

fn no_mail_host(domain: &str) -> String {
    format!("{domain} has no MX and no address record, so it receives no mail (RFC 5321 §5.1)")
}

fn describe(name: &str, kind: &str, error: &NetError) -> String {
    match error {
        NetError::Timeout => format!("the DNS did not answer the {kind} query for {name} in time"),
        other => format!("the {kind} lookup for {name} failed: {other}"),
    }
}

/// RFC 7505 §3: a single MX of preference 0 pointing to the root means "no mail here".
pub fn is_null_mx(records: &[(u16, String)]) -> bool {
    matches!(records, [(0, exchange)] if exchange.is_empty() || exchange == ".")
}

/// Orders MX names by preference, shuffling those of equal preference (RFC 5321 §5.1: "the
/// sender-SMTP MUST randomize them to spread the load"). Duplicates and root names are dropped.
pub fn order_mx(mut records: Vec<(u16, String)>, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64: uniform enough to spread load, and deterministic under a test's seed.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut keyed: Vec<(u16, u64, String)> = records
        .drain(..)
        .filter(|(_, name)| !name.is_empty() && name != ".")
        .map(|(preference, name)| {
            (
                preference,
                next(),
                name.trim_end_matches('.').to_ascii_lowercase(),
            )
        })
        .collect();
    keyed.sort_by_key(|(preference, random, _)| (*preference, *random));
    let mut seen = std::collections::HashSet::new();
    keyed
        .into_iter()
        .filter_map(|(_, _, name)| seen.insert(name.clone()).then_some(name))
        .collect()
}

/// IPv4 addresses first, in the DNS's order, then IPv6.
pub fn order_addresses(addresses: Vec<IpAddr>) -> Vec<IpAddr> {
    let (mut v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = addresses.into_iter().partition(IpAddr::is_ipv4);
    v4.extend(v6);
    v4.dedup();
    v4
}

fn random_seed() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, n)| (*p, n.to_string())).collect()
    }

    #[test]
    fn preference_orders_and_equal_preferences_are_shuffled() {
        let records = mx(&[(20, "b.example."), (10, "a.example."), (30, "c.example.")]);
        for seed in 1..20 {
            assert_eq!(
                order_mx(records.clone(), seed),
                vec!["a.example", "b.example", "c.example"]
            );
        }
        let equal = mx(&[(10, "x."), (10, "y."), (10, "z."), (5, "first.")]);
        let mut firsts = std::collections::HashSet::new();
        for seed in 1..200 {
            let order = order_mx(equal.clone(), seed);
            assert_eq!(order.len(), 4);
            assert_eq!(order[0], "first");
            firsts.insert(order[1].clone());
        }
        assert_eq!(firsts.len(), 3, "equal preferences were not shuffled");
    }

    #[test]
    fn duplicates_and_root_names_are_dropped() {
        let records = mx(&[(10, "A.example."), (20, "a.example."), (30, ".")]);
        assert_eq!(order_mx(records, 7), vec!["a.example"]);
    }

    #[test]
    fn null_mx_is_recognized() {
        assert!(is_null_mx(&mx(&[(0, ".")])));
        assert!(is_null_mx(&mx(&[(0, "")])));
        assert!(!is_null_mx(&mx(&[(10, ".")])));
        assert!(!is_null_mx(&mx(&[(0, "."), (10, "mx.example.")])));
        assert!(!is_null_mx(&mx(&[])));
    }

    #[test]
    fn ipv4_comes_first() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(order_addresses(vec![v6, a, b]), vec![a, b, v6]);
    }
}
