//! Builds campaign folders for integration tests: a campaign file, a CSV of recipients and
//! templates, with the relays and delivery options a test needs.

use std::path::{Path, PathBuf};

/// A relay section of the campaign file.
#[derive(Clone, Debug)]
pub struct RelayConf {
    pub name: String,
    pub port: u16,
    pub weight: u32,
    pub extra: String,
}

impl RelayConf {
    pub fn new(name: &str, port: u16) -> RelayConf {
        RelayConf {
            name: name.to_string(),
            port,
            weight: 1,
            extra: String::new(),
        }
    }

    pub fn weight(mut self, weight: u32) -> RelayConf {
        self.weight = weight;
        self
    }

    pub fn extra(mut self, extra: &str) -> RelayConf {
        self.extra = extra.to_string();
        self
    }
}

pub struct CampaignDir {
    pub dir: tempfile::TempDir,
    pub campaign: PathBuf,
    pub db: PathBuf,
}

impl CampaignDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `user{n}@d{n % domains}.example` for n in 0..count.
pub fn addresses(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| format!("user{n}@d{}.example", n % 7))
        .collect()
}

/// Writes a campaign with `emails` as recipients, sending through `relays`, with extra lines
/// for the `[delivery]` section.
pub fn campaign(emails: &[String], relays: &[RelayConf], delivery: &str) -> CampaignDir {
    campaign_with(emails, relays, delivery, "")
}

/// Like [`campaign`], with more sections (e.g. `[direct]`) appended to the file.
pub fn campaign_with(
    emails: &[String],
    relays: &[RelayConf],
    delivery: &str,
    sections: &str,
) -> CampaignDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("email,first_name\n");
    for (n, email) in emails.iter().enumerate() {
        csv.push_str(&format!("{email},Name{n}\n"));
    }
    std::fs::write(dir.path().join("list.csv"), csv).expect("csv");
    std::fs::write(
        dir.path().join("body.html"),
        "<p>Hello {{ first_name }}</p><p>Your address: {{ email }}</p>",
    )
    .expect("html");
    let mut delivery_lines = delivery.to_string();
    for (key, value) in [
        ("retry_delays", "[\"1s\"]"),
        ("connect_timeout_secs", "2"),
        ("command_timeout_secs", "5"),
        ("data_timeout_secs", "5"),
        ("relay_cooldown_secs", "1"),
    ] {
        if !delivery.contains(key) {
            delivery_lines.push_str(&format!("\n{key} = {value}"));
        }
    }
    let mut text = format!(
        "[message]\nfrom = \"Test Sender <sender@herald.example>\"\nsubject = \"Hi {{{{ first_name }}}}\"\nhtml = \"body.html\"\n\n\
         [recipients]\ncsv = \"list.csv\"\n\n[delivery]\n{delivery_lines}\n"
    );
    for relay in relays {
        text.push_str(&format!(
            "\n[[relay]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nweight = {}\n{}\n",
            relay.name, relay.port, relay.weight, relay.extra
        ));
    }
    text.push('\n');
    text.push_str(sections);
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, text).expect("campaign");
    let db = dir.path().join("herald.db");
    CampaignDir { dir, campaign, db }
}

/// A port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
