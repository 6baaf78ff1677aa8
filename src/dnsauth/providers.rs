//! The well-known hosted relays: how to recognize one by its host name, the SPF `include:` its
//! own documentation tells customers to publish, and, for the mailbox providers (Microsoft 365,
//! Google), the daily sending limit of a mailbox, which a bulk campaign meets quickly. Pure data
//! and a lookup; the includes are the providers' documented ones, not discovered.

use super::{Finding, Level, Mechanism, Plan};

/// One hosted relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    /// Host names (exact) or, starting with '.', suffixes.
    hosts: &'static [&'static str],
    /// The `include:` target the provider documents for its senders' SPF records.
    pub spf_include: &'static str,
    /// For a mailbox provider: what a mailbox may send a day, and what it answers past that.
    pub mailbox_limit: Option<&'static str>,
    /// Whether the provider puts its own domain in MAIL FROM unless the customer sets up a
    /// custom one; then receivers check SPF against the provider's domain, and DMARC alignment
    /// rests on DKIM.
    pub own_return_path: bool,
}

pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "Microsoft 365",
        hosts: &["smtp.office365.com", ".mail.protection.outlook.com"],
        spf_include: "spf.protection.outlook.com",
        mailbox_limit: Some(
            "Microsoft 365 lets one mailbox send to 10,000 recipients a day; past that it refuses with 554 5.2.0 (SubmissionQuotaExceededException)",
        ),
        own_return_path: false,
    },
    Provider {
        name: "Google Workspace",
        hosts: &["smtp.gmail.com", "smtp-relay.gmail.com"],
        spf_include: "_spf.google.com",
        mailbox_limit: Some(
            "Google lets a Workspace account send 2,000 messages a day and a consumer Gmail account 500; past that it refuses with 550 5.4.5 (Daily user sending limit exceeded)",
        ),
        own_return_path: false,
    },
    Provider {
        name: "Amazon SES",
        hosts: &[".amazonaws.com"],
        spf_include: "amazonses.com",
        mailbox_limit: None,
        own_return_path: true,
    },
    Provider {
        name: "Mailgun",
        hosts: &["smtp.mailgun.org", "smtp.eu.mailgun.org"],
        spf_include: "mailgun.org",
        mailbox_limit: None,
        own_return_path: true,
    },
    Provider {
        name: "SendGrid",
        hosts: &["smtp.sendgrid.net"],
        spf_include: "sendgrid.net",
        mailbox_limit: None,
        own_return_path: true,
    },
    Provider {
        name: "Brevo",
        hosts: &["smtp-relay.brevo.com", "smtp-relay.sendinblue.com"],
        spf_include: "spf.brevo.com",
        mailbox_limit: None,
        own_return_path: true,
    },
];

/// The provider a relay host belongs to, if it is a well-known one.
pub fn provider_of(host: &str) -> Option<&'static Provider> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    PROVIDERS.iter().find(|provider| {
        provider
            .hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix('.') {
                // SES's SMTP endpoints are email-smtp.REGION.amazonaws.com; other AWS hosts are not SES.
                Some("amazonaws.com") => host.starts_with("email-smtp.") && host.ends_with(pattern),
                Some(_) => host.ends_with(pattern),
                None => host == *pattern,
            })
    })
}

/// A note for each relay that is a hosted mailbox (Microsoft 365, Google): its daily limit.
pub fn notes(plan: &Plan) -> Vec<Finding> {
    plan.relays
        .iter()
        .filter_map(|relay| {
            let provider = provider_of(&relay.host)?;
            let limit = provider.mailbox_limit?;
            Some(
                Finding::new(
                    Mechanism::Provider,
                    Level::Amber,
                    format!("relay \"{}\" ({})", relay.name, relay.host),
                )
                .summary(format!(
                    "a {} mailbox sending through its own relay: {limit}",
                    provider.name
                ))
                .fix(
                    "keep each day's sending under that limit (delivery.rate_per_hour), or send bulk mail through a bulk-mail relay or direct mode",
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_are_recognized_by_host() {
        let check = |host: &str, expected: Option<&str>| {
            assert_eq!(provider_of(host).map(|p| p.name), expected, "{host}");
        };
        check("smtp.office365.com", Some("Microsoft 365"));
        check(
            "acme-example.mail.protection.outlook.com",
            Some("Microsoft 365"),
        );
        check("SMTP.Gmail.com.", Some("Google Workspace"));
        check("email-smtp.eu-west-1.amazonaws.com", Some("Amazon SES"));
        check("ec2-1-2-3-4.compute.amazonaws.com", None);
        check("smtp.eu.mailgun.org", Some("Mailgun"));
        check("smtp.sendgrid.net", Some("SendGrid"));
        check("smtp-relay.brevo.com", Some("Brevo"));
        check("smtp.acme.example", None);
        check("notsmtp.gmail.com.evil.example", None);
    }
}
