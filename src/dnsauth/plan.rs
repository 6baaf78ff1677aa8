//! What the check needs to know about a campaign, as plain data: the From and envelope
//! domains, the relays and the direct-mode address mail leaves from, the DKIM domain, selector
//! and public key, and the resolver to ask. Made from a `Campaign` without any DNS; the only
//! I/O is reading the DKIM key file and asking the OS which local address would be used.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::campaign::{Campaign, Mode};
use crate::compose::{DkimSigner, PublicKey};
use crate::recipients::EmailAddress;

/// Everything the check asks about.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The From address's domain, ASCII (the DMARC domain, RFC 7489 §3.1).
    pub from_domain: String,
    /// The MAIL FROM domain, whose SPF record receivers evaluate: `[bounces] return_path`'s
    /// under VERP, else the From domain.
    pub envelope_domain: String,
    /// An address at the envelope domain, for SPF macros (RFC 7208 §7).
    pub envelope_sender: String,
    pub relays: Vec<RelayPlan>,
    /// Direct and mixed modes: this machine sends to the MX hosts itself.
    pub direct: Option<DirectPlan>,
    /// `[dkim]`, when the campaign signs.
    pub dkim: Option<DkimPlan>,
    /// `[direct] nameservers`; empty: the system's resolver.
    pub nameservers: Vec<SocketAddr>,
    pub timeout_secs: u32,
}

#[derive(Debug, Clone)]
pub struct RelayPlan {
    pub name: String,
    /// A host name or an IP address.
    pub host: String,
}

#[derive(Debug, Clone)]
pub struct DirectPlan {
    /// `[direct] helo`.
    pub helo: String,
    /// The address receivers see: `[direct] public_ip`, or the outgoing interface's when that
    /// one is public.
    pub public_ip: Option<IpAddr>,
    /// Why `public_ip` is unknown, when it is.
    pub unknown_because: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DkimPlan {
    pub domain: String,
    pub selector: String,
    /// The public half of `[dkim] private_key`, or why it could not be read.
    pub key: Result<PublicKey, String>,
    /// The record to publish for that key.
    pub record_to_publish: Option<String>,
}

impl DkimPlan {
    /// `selector._domainkey.domain` (RFC 6376 §3.6.2.1).
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

impl Plan {
    pub fn from_campaign(campaign: &Campaign) -> Plan {
        let from_address = address_of(&campaign.message.from);
        let from_domain = domain_of(&from_address);
        let return_path = campaign
            .bounces
            .as_ref()
            .and_then(|bounces| bounces.return_path.as_ref());
        let (envelope_domain, envelope_sender) = match return_path {
            Some(path) => (
                path.domain.clone(),
                format!("{}@{}", path.local, path.domain),
            ),
            None => (from_domain.clone(), from_address),
        };
        let mode = campaign.delivery.mode;
        let relays = if mode == Mode::Direct {
            Vec::new()
        } else {
            campaign
                .relays
                .iter()
                .map(|relay| RelayPlan {
                    name: relay.name.clone(),
                    host: relay.host.clone(),
                })
                .collect()
        };
        let direct = (mode != Mode::Relay).then(|| direct_plan(campaign));
        let dkim = campaign.dkim.as_ref().map(|spec| {
            let loaded = DkimSigner::load(&spec.domain, &spec.selector, &spec.private_key);
            DkimPlan {
                domain: spec
                    .domain
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
                selector: spec.selector.trim().to_ascii_lowercase(),
                record_to_publish: loaded.as_ref().ok().map(DkimSigner::dns_record),
                key: loaded
                    .map(|signer| signer.public_key())
                    .map_err(|error| error.to_string()),
            }
        });
        Plan {
            from_domain,
            envelope_domain,
            envelope_sender,
            relays,
            direct,
            dkim,
            nameservers: campaign.direct.nameservers.clone(),
            timeout_secs: campaign.direct.dns_timeout_secs,
        }
    }
}

fn direct_plan(campaign: &Campaign) -> DirectPlan {
    let helo = campaign
        .direct
        .helo
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Some(ip) = campaign.direct.public_ip {
        return DirectPlan {
            helo,
            public_ip: Some(ip),
            unknown_because: None,
        };
    }
    let (public_ip, unknown_because) = match public_address() {
        Ok(ip) if is_public(ip) => (Some(ip), None),
        Ok(ip) => (
            None,
            Some(format!(
                "this machine's outgoing address is {ip}, a private one (behind NAT?)"
            )),
        ),
        Err(why) => (None, Some(why)),
    };
    DirectPlan {
        helo,
        public_ip,
        unknown_because,
    }
}

/// The address of the interface the default route leaves through. A UDP "connect" only picks
/// the route; no packet is sent.
pub fn public_address() -> Result<IpAddr, String> {
    let socket = UdpSocket::bind("0.0.0.0:0")
        .map_err(|error| format!("could not open a socket ({error})"))?;
    // A documentation address (RFC 5737): routed by the default route like any remote host.
    socket
        .connect("198.51.100.1:25")
        .map_err(|error| format!("this machine has no route to the internet ({error})"))?;
    socket
        .local_addr()
        .map(|addr| addr.ip())
        .map_err(|error| format!("could not read the local address ({error})"))
}

/// Whether receivers could see mail come from `ip` (not private, shared, loopback, link-local
/// or documentation space: RFC 1918, 6598, 3927, 5737, 4193, 3849).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The address inside `Name <address>`, or the whole text.
fn address_of(from: &str) -> String {
    let inner = match (from.rfind('<'), from.rfind('>')) {
        (Some(start), Some(end)) if start < end => &from[start + 1..end],
        _ => from,
    };
    let inner = inner.trim();
    EmailAddress::parse(inner)
        .map(|address| address.to_ascii())
        .unwrap_or_else(|_| inner.to_string())
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_addresses_give_their_domain() {
        let check = |from: &str, expected: &str| {
            assert_eq!(domain_of(&address_of(from)), expected, "{from}");
        };
        check("Acme News <news@Acme.Example>", "acme.example");
        check("news@acme.example", "acme.example");
        check("\"a@b\" <news@bücher.example>", "xn--bcher-kva.example");
    }

    #[test]
    fn public_addresses() {
        for private in [
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.2",
            "fd00::1",
            "fe80::1",
            "::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "203.1.113.9", "2a00:1450::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
