//! The global suppression list as a CSV file (RFC 4180): the one format `herald suppression
//! export` and the window's Suppression view both write, and `herald suppression import` reads
//! back (address, reason, at_ms, campaign, evidence). Pure text; the caller writes the file.

use crate::store::Suppression;

/// The header line and one line per entry, CRLF-terminated as RFC 4180 says.
pub fn to_csv(list: &[Suppression]) -> String {
    let mut text = String::from("address,reason,at_ms,campaign,evidence\r\n");
    for entry in list {
        let fields = [
            entry.address.clone(),
            entry.reason.as_str().to_string(),
            entry.at_ms.to_string(),
            entry.campaign.map(|c| c.to_string()).unwrap_or_default(),
            entry.evidence.clone(),
        ];
        let quoted: Vec<String> = fields.iter().map(|field| field_of(field)).collect();
        text.push_str(&quoted.join(","));
        text.push_str("\r\n");
    }
    text
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
pub fn field_of(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SuppressionReason;

    #[test]
    fn entries_become_quoted_lines() {
        let list = [Suppression {
            address: "ada@example.org".into(),
            reason: SuppressionReason::Bounced,
            at_ms: 7,
            campaign: Some(3),
            evidence: "5.1.1 \"no\", really".into(),
        }];
        assert_eq!(
            to_csv(&list),
            "address,reason,at_ms,campaign,evidence\r\n\
             ada@example.org,bounced,7,3,\"5.1.1 \"\"no\"\", really\"\r\n"
        );
    }
}
