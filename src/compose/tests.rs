//! Unit tests of message composition: headers, parts, Message-ID and header safety.

use super::*;

fn campaign_with(extra_message: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Campaign) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    std::fs::write(dir.path().join("list.csv"), "email\n").unwrap();
    let text = format!(
        "[message]\nfrom = \"Acme Ünïcode <news@acme.example>\"\nsubject = \"{{{{ first_name }}}}, hello\"\n{extra_message}\n\
         [recipients]\ncsv = \"list.csv\"\n[[relay]]\nhost = \"h\"\n"
    );
    let campaign = Campaign::parse(&text, &dir.path().join("c.toml"), &|_| true).unwrap();
    (dir, campaign)
}

fn recipient<'a>(fields_json: &'a str) -> RecipientData<'a> {
    RecipientData {
        id: 7,
        email: "ada@example.org",
        fields_json,
    }
}

fn text_of(composed: &Composed) -> String {
    String::from_utf8(composed.bytes.clone()).unwrap()
}

#[test]
fn builds_alternative_message_with_derived_text() {
    let (_dir, campaign) = campaign_with(
        "html = \"b.html\"\nunsubscribe = \"https://acme.example/u?e={{ url(email) }}\"",
        &[(
            "b.html",
            "<p>Hi <b>{{ first_name }}</b> <a href=\"https://acme.example\">shop</a></p>",
        )],
    );
    let composer = Composer::new(&campaign).unwrap();
    let composed = composer
        .compose(&recipient(r#"{"first_name":"Ada"}"#))
        .unwrap();
    let text = text_of(&composed);
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("Subject: Ada, hello"), "{text}");
    assert!(text.contains("To: ada@example.org"), "{text}");
    assert!(
        text.contains("Hi Ada shop (https://acme.example)"),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe: <https://acme.example/u?e=ada%40example.org>"),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{text}"
    );
    assert!(text.contains("Date: "), "{text}");
    assert_eq!(composed.envelope_to, "ada@example.org");
    assert_eq!(composed.envelope_from, "news@acme.example");
    assert!(
        text.contains(&format!("Message-ID: {}", composed.message_id)),
        "{text}"
    );
}

#[test]
fn message_id_is_deterministic_per_recipient() {
    let (_dir, campaign) = campaign_with("text = \"b.txt\"", &[("b.txt", "Hi")]);
    let composer = Composer::new(&campaign).unwrap();
    let first = composer
        .compose(&recipient(r#"{"first_name":"A"}"#))
        .unwrap();
    let again = composer
        .compose(&recipient(r#"{"first_name":"A"}"#))
        .unwrap();
    assert_eq!(first.message_id, again.message_id);
    assert!(first.message_id.starts_with("<7."), "{}", first.message_id);
    assert!(first.message_id.ends_with("@acme.example>"));
    assert_ne!(first.message_id, composer.message_id(8));
}

#[test]
fn crlf_in_fields_never_makes_a_header() {
    let (_dir, campaign) = campaign_with(
        "text = \"b.txt\"\nheaders = { \"X-Segment\" = \"{{ segment }}\" }",
        &[("b.txt", "Body {{ first_name }}")],
    );
    let composer = Composer::new(&campaign).unwrap();
    let fields =
        r#"{"first_name":"Eve\r\nBcc: victim@evil.example","segment":"a\nX-Injected: yes"}"#;
    let text = text_of(&composer.compose(&recipient(fields)).unwrap());
    let header_end = text.find("\r\n\r\n").unwrap();
    let headers = &text[..header_end];
    for line in headers.split("\r\n") {
        assert!(!line.starts_with("Bcc:"), "{headers}");
        assert!(!line.starts_with("X-Injected:"), "{headers}");
    }
}

#[test]
fn utf8_subjects_and_names_are_encoded() {
    let (_dir, campaign) = campaign_with("text = \"b.txt\"", &[("b.txt", "x")]);
    let composer = Composer::new(&campaign).unwrap();
    let composed = composer
        .compose(&recipient(r#"{"first_name":"Zoë"}"#))
        .unwrap();
    let text = text_of(&composed);
    assert_eq!(composed.subject, "Zoë, hello");
    assert!(text.contains("Subject: =?utf-8?"), "{text}");
    assert!(text.contains("From: =?utf-8?"), "{text}");
    assert!(text.is_ascii() || text.contains("8bit"), "{text}");
}

#[test]
fn attachments_make_a_mixed_message() {
    let (_dir, campaign) = campaign_with(
        "text = \"b.txt\"\nattachments = [\"prices.pdf\"]",
        &[("b.txt", "x"), ("prices.pdf", "%PDF-1.4 fake")],
    );
    let composer = Composer::new(&campaign).unwrap();
    let text = text_of(
        &composer
            .compose(&recipient(r#"{"first_name":"A"}"#))
            .unwrap(),
    );
    assert!(text.contains("multipart/mixed"), "{text}");
    assert!(text.contains("application/pdf"), "{text}");
    assert!(text.contains("prices.pdf"), "{text}");
}

#[test]
fn template_problems_are_all_reported() {
    let (_dir, mut campaign) = campaign_with("html = \"b.html\"", &[("b.html", "{{ oops +")]);
    campaign.message.subject = "{{ ".into();
    let problems = Composer::new(&campaign).err().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    let text = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("subject, line 1") && text.contains("b.html, line 1"),
        "{text}"
    );
}

#[test]
fn unknown_field_names_recipient() {
    let (_dir, campaign) = campaign_with("text = \"b.txt\"", &[("b.txt", "Hi {{ nickname }}")]);
    let composer = Composer::new(&campaign).unwrap();
    let error = composer
        .compose(&recipient(r#"{"first_name":"A"}"#))
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("nickname") && message.contains("ada@example.org"),
        "{message}"
    );
}

#[test]
fn header_safe_strips_controls() {
    assert_eq!(header_safe("a\r\nb\tc\0d"), "a  b c d");
}
