//! Direct mode's reverse DNS: the PTR name of the address mail leaves from, confirmed forward
//! (FCrDNS: the name resolves back to the address), and the HELO name (`[direct] helo`) equal
//! to it, as Google's sender guidelines ask of mail sent from a machine of its own (Gmail
//! answers 5.7.25 without a PTR).

use std::net::IpAddr;

use futures_util::future::join_all;

use super::dns::{Dns, Missing};
use super::{Finding, Level, Mechanism, Plan};

pub async fn check(dns: &Dns, plan: &Plan) -> Vec<Finding> {
    let Some(direct) = &plan.direct else {
        return Vec::new();
    };
    let Some(ip) = direct.public_ip else {
        let why = direct
            .unknown_because
            .as_deref()
            .unwrap_or("this machine's public address is not known");
        return vec![
            Finding::unchecked(
                Mechanism::Ptr,
                format!("this machine (HELO {})", direct.helo),
                why,
            )
            .fix("set [direct] public_ip to the address receivers see mail come from"),
        ];
    };
    let subject = ip.to_string();
    let names = match dns.reverse_names(ip).await {
        Ok(names) => names,
        Err(Missing::Failed(why)) => {
            return vec![Finding::unchecked(Mechanism::Ptr, subject, &why)];
        }
        Err(Missing::NotFound) => {
            return vec![
                Finding::new(Mechanism::Ptr, Level::Red, subject)
                    .summary(format!(
                        "{ip} has no reverse DNS (PTR) name: Gmail refuses mail from such addresses (5.7.25), and others junk it"
                    ))
                    .fix(format!(
                        "ask whoever owns {ip} (your hosting or internet provider) to set its PTR to {}, and make {} resolve to {ip}",
                        direct.helo, direct.helo
                    )),
            ];
        }
    };
    let forward = join_all(names.iter().map(|name| dns.addresses(name))).await;
    let mut seen = Vec::new();
    let mut confirmed = None;
    let mut failed = None;
    for (name, answer) in names.iter().zip(forward) {
        match answer {
            Ok(addresses) if addresses.contains(&ip) => {
                confirmed = Some(name.clone());
                break;
            }
            Ok(addresses) => seen.push(format!(
                "{name} resolves to {}",
                addresses
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(Missing::NotFound) => seen.push(format!("{name} does not resolve")),
            Err(Missing::Failed(why)) => failed = Some(why),
        }
    }
    let record = Some(format!("{ip} PTR {}", names.join(", ")));
    let Some(name) = confirmed else {
        if let Some(why) = failed {
            return vec![Finding::unchecked(Mechanism::Ptr, subject, &why).record(record)];
        }
        return vec![
            Finding::new(Mechanism::Ptr, Level::Red, subject)
                .record(record)
                .summary(format!(
                    "the reverse name of {ip} does not resolve back to it ({}): receivers treat that as no reverse DNS (Gmail 5.7.25)",
                    seen.join("; ")
                ))
                .fix(format!(
                    "give {} an A record for {ip}, or have the PTR of {ip} point to a name that has one",
                    names.first().map(String::as_str).unwrap_or("the name")
                )),
        ];
    };
    if !name.eq_ignore_ascii_case(&direct.helo) {
        return vec![
            Finding::new(Mechanism::Ptr, Level::Amber, subject)
                .record(record)
                .summary(format!(
                    "{ip} -> {name} -> {ip} is confirmed, but Herald greets receivers as {} ([direct] helo); Google asks for the same name",
                    direct.helo
                ))
                .fix(format!("set [direct] helo = \"{name}\"")),
        ];
    }
    vec![
        Finding::new(Mechanism::Ptr, Level::Green, subject)
            .record(record)
            .summary(format!(
                "{ip} -> {name} -> {ip} is confirmed, and it is the HELO name"
            )),
    ]
}
