//! The check's DNS: mail-auth's authenticator over the resolver direct mode uses, plus the
//! lookups the findings show (TXT records verbatim, addresses, reverse names) with a failure
//! told apart from an answer that there is nothing.

use std::net::IpAddr;

use mail_auth::common::cache::NoCache;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{IpLookupStrategy, MessageAuthenticator, RecordSet, SpfResult};

use crate::engine::dns::{TxtError, build_resolver, txt_records};

/// Why a lookup gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The DNS answered: no such name, or no record of that type.
    NotFound,
    /// No answer could be had (timeout, SERVFAIL, refused, no network).
    Failed(String),
}

impl Missing {
    fn from_mail_auth(error: mail_auth::Error, what: &str) -> Missing {
        match error {
            mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_)) => Missing::NotFound,
            other => Missing::Failed(format!("the {what} lookup failed ({other})")),
        }
    }
}

pub struct Dns {
    auth: MessageAuthenticator,
}

impl Dns {
    pub fn new(nameservers: &[std::net::SocketAddr], timeout_secs: u32) -> Result<Dns, String> {
        let resolver = build_resolver(nameservers, timeout_secs).map_err(|e| e.to_string())?;
        Ok(Dns {
            auth: MessageAuthenticator(resolver),
        })
    }

    /// The TXT records at `name`, each one's strings joined.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, Missing> {
        txt_records(&self.auth.0, name)
            .await
            .map_err(|error| match error {
                TxtError::NotFound => Missing::NotFound,
                TxtError::Failed(why) => Missing::Failed(why),
            })
    }

    /// The addresses of `host` (IPv4, else IPv6), or the host itself when it is an address.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Missing> {
        let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let found = self
            .auth
            .ip_lookup(
                &format!("{}.", bare.trim_end_matches('.')),
                IpLookupStrategy::Ipv4thenIpv6,
                16,
                None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
                None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
            )
            .await
            .map_err(|error| Missing::from_mail_auth(error, "address"))?;
        if found.is_empty() {
            return Err(Missing::NotFound);
        }
        Ok(found)
    }

    /// The reverse names of `ip` (PTR), lower-case, without the final dot.
    pub async fn reverse_names(&self, ip: IpAddr) -> Result<Vec<String>, Missing> {
        let found = self
            .auth
            .ptr_lookup(ip, None::<&NoCache<IpAddr, RecordSet<Box<str>>>>)
            .await
            .map_err(|error| Missing::from_mail_auth(error, "PTR"))?;
        let names: Vec<String> = found
            .rrset
            .iter()
            .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if names.is_empty() {
            return Err(Missing::NotFound);
        }
        Ok(names)
    }

    /// RFC 7208 `check_host()` for mail from `sender` (whose domain is the one evaluated)
    /// arriving from `ip` after `HELO helo`.
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfResult {
        self.auth
            .verify_spf(SpfParameters::verify_mail_from(ip, helo, helo, sender))
            .await
            .result()
    }
}
