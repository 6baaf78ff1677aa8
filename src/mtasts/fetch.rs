//! Fetching one MTA-STS policy (RFC 8461 §3.3): `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! through the program's one HTTP client, the policy host resolved by direct mode's resolver and
//! still named for SNI and the certificate check, which must pass against the public roots plus
//! `[direct] ca_file`. Only a 200 with a `text/plain` body of at most 64 KB counts; redirects are
//! not followed (the client never does) and the whole fetch is bounded in time.

use super::policy::{Policy, parse_policy};
use super::{Resolve, Settings};
use crate::http;

/// RFC 8461 §3.3: senders may refuse policy bodies over 64 KB.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// The policy of `domain` and the bytes it was read from, or why not (a sentence).
pub(super) async fn policy<R: Resolve>(
    resolver: &R,
    domain: &str,
    settings: &Settings,
) -> Result<(Policy, Vec<u8>), String> {
    let work = fetch(resolver, domain, settings);
    match tokio::time::timeout(settings.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no policy from mta-sts.{domain} within {} s",
            settings.timeout.as_secs()
        )),
    }
}

async fn fetch<R: Resolve>(
    resolver: &R,
    domain: &str,
    settings: &Settings,
) -> Result<(Policy, Vec<u8>), String> {
    let host = format!("mta-sts.{domain}");
    let address = resolver.address(&host).await?;
    let url = policy_url(&host, settings.https_port);
    let request = http::Request::get(url.as_str()).connect_to(address);
    let limits = http::Limits {
        total: settings.timeout,
        max_body: MAX_POLICY_BYTES,
    };
    let answer = http::send(request, settings.ca_pem.as_deref(), limits)
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if answer.status != 200 {
        return Err(format!("{url} answered HTTP {}", answer.status));
    }
    // RFC 8461 §3.2: the policy is served as text/plain; anything else may be a page a user
    // of the web server could upload.
    let media = answer.header("content-type").unwrap_or_default();
    if !media.trim().to_ascii_lowercase().starts_with("text/plain") {
        return Err(format!("{url} is not served as text/plain ({media:?})"));
    }
    let policy = parse_policy(&answer.body).map_err(|error| format!("{url}: {error}"))?;
    Ok((policy, answer.body))
}

/// The policy's well-known URL; the port appears only when it is not HTTPS's own.
fn policy_url(host: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{host}/.well-known/mta-sts.txt")
    } else {
        format!("https://{host}:{port}/.well-known/mta-sts.txt")
    }
}

#[cfg(test)]
mod tests {
    use super::policy_url;

    #[test]
    fn the_url_is_the_well_known_one() {
        assert_eq!(
            policy_url("mta-sts.example.org", 443),
            "https://mta-sts.example.org/.well-known/mta-sts.txt"
        );
        assert_eq!(
            policy_url("mta-sts.example.org", 8443),
            "https://mta-sts.example.org:8443/.well-known/mta-sts.txt"
        );
    }
}
