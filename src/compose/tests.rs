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
    let mut composer = Composer::new(&campaign).unwrap();
    composer.key_message_ids([4; 32], 3);
    let first = composer
        .compose(&recipient(r#"{"first_name":"A"}"#))
        .unwrap();
    let again = composer
        .compose(&recipient(r#"{"first_name":"A"}"#))
        .unwrap();
    assert_eq!(first.message_id, again.message_id);
    // Campaign 3, recipient 7, then the MAC (issue #21).
    assert!(
        first.message_id.starts_with("<3.7."),
        "{}",
        first.message_id
    );
    assert!(first.message_id.ends_with(".herald@acme.example>"));
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

/// Verifies a signed message with dkimpy (Debian's python3-dkim), an independent verifier, with
/// the public key handed to it instead of a DNS lookup.
pub(crate) fn dkimpy_verifies(message: &[u8], key_type: &str, public_b64: &str) -> (bool, String) {
    use std::io::Write as _;
    const VERIFY: &str = "import dkim, sys, logging\n\
        rec = ('v=DKIM1; k=' + sys.argv[1] + '; p=' + sys.argv[2]).encode()\n\
        msg = sys.stdin.buffer.read()\n\
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n\
        ok = dkim.verify(msg, logger=logging.getLogger('dkim'), dnsfunc=lambda name, timeout=5: rec)\n\
        sys.exit(0 if ok else 1)\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", VERIFY, key_type, public_b64])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with python3-dkim (apt-get install python3-dkim)");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh key of `kind` ("pkcs1", "pkcs8", "ed25519") in `dir`: (file name, k=, p=).
pub(crate) fn make_key(dir: &Path, kind: &str) -> (String, &'static str, String) {
    use base64::Engine as _;
    let name = format!("{kind}.pem");
    let path = dir.join(&name);
    let path_text = path.to_str().unwrap();
    match kind {
        "pkcs1" => openssl(&["genrsa", "-traditional", "-out", path_text, "2048"]),
        "pkcs8" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path_text,
        ]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", path_text]),
    };
    let der = openssl(&["pkey", "-in", path_text, "-pubout", "-outform", "DER"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    if kind == "ed25519" {
        (name, "ed25519", b64.encode(&der[der.len() - 32..]))
    } else {
        (name, "rsa", b64.encode(&der))
    }
}

#[test]
fn dkim_signatures_verify_with_dkimpy() {
    for kind in ["pkcs1", "pkcs8", "ed25519"] {
        let keys = tempfile::tempdir().unwrap();
        let (file, key_type, public) = make_key(keys.path(), kind);
        let key_text = std::fs::read_to_string(keys.path().join(&file)).unwrap();
        let (_dir, campaign) = campaign_with(
            "html = \"b.html\"\nreply_to = \"Hélène <help@acme.example>\"\nunsubscribe = \"https://acme.example/u?e={{ url(email) }}\"\n\
                 unsubscribe_mailto = \"mailto:unsub@acme.example?subject=unsubscribe\"\nattachments = [\"prix été.pdf\"]\n\
                 feedback_id = \"nov:acme:news:herald\"\n\
                 [dkim]\ndomain = \"acme.example\"\nselector = \"s1\"\nprivate_key = \"key.pem\"",
            &[
                (
                    "b.html",
                    "<p>Hi  {{ first_name }}</p>\n\n<p>trailing   \t</p>\n\n\n",
                ),
                ("prix été.pdf", "%PDF-1.4 fake"),
                ("key.pem", &key_text),
            ],
        );
        let composer = Composer::new(&campaign).unwrap();
        let composed = composer
            .compose(&recipient(
                r#"{"first_name":"Zoë with a rather long name that goes on"}"#,
            ))
            .unwrap();
        let text = text_of(&composed);
        assert!(text.starts_with("DKIM-Signature: v=1; a="), "{text}");
        assert!(
            text.contains("h=from:to:subject:date:message-id:reply-to:mime-version:"),
            "{text}"
        );
        assert!(text.contains("list-unsubscribe:"), "{text}");
        // A campaign that offers unsubscribing gets a List-Id by default (signed: see below).
        assert!(text.contains("List-Id: <c.acme.example>"), "{text}");
        assert!(text.contains("Feedback-ID: nov:acme:news:herald"), "{text}");
        // Gmail reads Feedback-ID only when the signature covers it (as List-Id, RFC 2919):
        // both names must be in the signature's h= tag (RFC 6376 §3.5), unfolded.
        let head = text.split("\r\n\r\n").next().unwrap();
        let signature: String = head
            .split("\r\n")
            .skip_while(|line| !line.starts_with("DKIM-Signature:"))
            .enumerate()
            .take_while(|(n, line)| *n == 0 || line.starts_with([' ', '\t']))
            .map(|(_, line)| line.trim())
            .collect();
        let signed: Vec<&str> = signature
            .split(';')
            .find_map(|tag| tag.trim().strip_prefix("h="))
            .unwrap_or_else(|| panic!("no h= tag in {signature}"))
            .split(':')
            .map(str::trim)
            .collect();
        assert!(signed.contains(&"feedback-id"), "{kind}: h={signed:?}");
        assert!(signed.contains(&"list-id"), "{kind}: h={signed:?}");
        assert!(
            signed.contains(&"list-unsubscribe-post"),
            "{kind}: h={signed:?}"
        );
        let (ok, log) = dkimpy_verifies(&composed.bytes, key_type, &public);
        assert!(ok, "{kind}: dkimpy rejected the signature:\n{log}\n{text}");
        let mut tampered = composed.bytes.clone();
        let at = text.find("Hi ").unwrap();
        tampered[at] = b'h';
        assert!(!dkimpy_verifies(&tampered, key_type, &public).0, "{kind}");
    }
}

#[test]
fn nul_in_stored_fields_never_reaches_the_message() {
    let (_dir, campaign) = campaign_with("text = \"b.txt\"", &[("b.txt", "Body {{ first_name }}")]);
    let composer = Composer::new(&campaign).unwrap();
    let composed = composer
        .compose(&recipient(r#"{"first_name":"A\u0000da"}"#))
        .unwrap();
    assert!(!composed.bytes.contains(&0));
    assert!(text_of(&composed).contains("Body Ada"));
}

#[test]
fn long_ascii_lines_travel_as_7bit_and_utf8_as_quoted_printable() {
    let long_line = format!("<p>{}</p>", "word ".repeat(40));
    let (_dir, campaign) = campaign_with(
        "html = \"b.html\"\ntext = \"b.txt\"",
        &[
            ("b.html", long_line.as_str()),
            (
                "b.txt",
                "Grüße {{ first_name }}, here is a longer text with only one non-ASCII word.",
            ),
        ],
    );
    let composer = Composer::new(&campaign).unwrap();
    let text = text_of(
        &composer
            .compose(&recipient(r#"{"first_name":"A"}"#))
            .unwrap(),
    );
    assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
    assert!(text.contains(&long_line), "{text}");
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable"),
        "{text}"
    );
}

#[test]
fn text_derived_from_the_html_template_matches_text_derived_from_each_page() {
    let engine = super::TemplateEngine::new();
    let templates = [
        "<p>Hello {{ first_name }},</p><p>Picks for <b>{{ city }}</b>.</p>",
        "<html><head><title>{{ city }}</title><style>p { color: red }</style></head>\
         <body><h1>Hi {{ upper(first_name) }}</h1>\n<ul><li>{{ city }}</li><li>two</li></ul>\
         <p><a href=\"https://shop.example/?u={{ url(email) }}&amp;c={{ url(city) }}\">See it</a></p>\
         <p><a href=\"mailto:{{ email }}\">write</a> {{ email }} &amp; {{ or(first_name, \"friend\") }}</p>\
         <img src=\"cid:logo\" alt=\"{{ city }} logo\"><table><tr><td>{{ first_name }}!</td>\
         <td>x</td></tr></table><!-- {{ city }} --></body></html>",
        "{{ if city == \"Paris\" { \"Bonjour\" } else { \"Hello\" } }} <br>{{ first_name }}&nbsp;!",
    ];
    let people = [
        ("ada@example.org", "Ada", "Paris"),
        ("zoe@example.org", "Zoë", "Saint-Étienne & <Lyon>"),
        (
            "x@example.org",
            "a \"quoted\" 'name'",
            "tab\tand\nnewline  and  spaces",
        ),
        ("y@example.org", "", "&amp; &lt;already&gt;"),
        ("z@example.org", " Ada ", "  Paris\u{a0} "),
    ];
    for source in templates {
        let template = engine.compile("t.html", source, true).unwrap();
        let derived = template
            .derive_text(html_to_text, super::html_text::tidy)
            .unwrap();
        for (email, first_name, city) in people {
            let fields = [("first_name", first_name), ("city", city), ("email", email)];
            let mut variables = Variables::new(fields);
            let body = engine
                .render_with_text(&template, &derived, &mut variables, email)
                .unwrap();
            let (html, text) = (body.html, body.text);
            // The page's conversion may keep two spaces where a value ended with one and a
            // cell ended after it; the derived text keeps one. Nothing else may differ.
            let single_spaced = |text: &str| {
                text.split(' ')
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            assert_eq!(
                single_spaced(&text),
                single_spaced(&html_to_text(&html)),
                "{source}\nwith {fields:?}"
            );
        }
    }
}

#[test]
fn raw_expressions_and_stand_in_characters_are_not_derived() {
    let engine = super::TemplateEngine::new();
    for source in [
        "<p>{{{ block }}}</p>",
        "<p>\u{e000} {{ x }}</p>",
        // Where a value could change how the page reads: a link's label, the start of an
        // address, a comment marker or an entity around it.
        "<p><a href=\"https://x.example\">{{ x }}</a></p>",
        "<p><a href=\"{{ x }}\">go</a></p>",
        "<p>&{{ x }}</p>",
        "<p><!-{{ x }}-></p>",
    ] {
        let template = engine.compile("t.html", source, true).unwrap();
        assert!(
            template
                .derive_text(html_to_text, super::html_text::tidy)
                .is_none(),
            "{source}"
        );
    }
}

#[test]
fn quoted_printable_parts_decode_to_what_was_rendered() {
    let mut html = String::from("<html><body>\n<h1>Hello {{ first_name }}</h1>\n");
    for n in 0..40 {
        html.push_str(&format!(
            "<p>Block {n} for people in {{{{ city }}}}, a line long enough to need soft breaks \
             somewhere = here.</p><p><a href=\"https://x.example/{n}?u={{{{ url(email) }}}}\">go</a></p>\n"
        ));
    }
    let (_dir, campaign) = campaign_with("html = \"b.html\"", &[("b.html", html.as_str())]);
    let composer = Composer::new(&campaign).unwrap();
    let data = recipient(r#"{"first_name":"Zoë  ","city":"Saint-Étienne & <Lyon>\r\nnorth"}"#);
    let (parts, composed) = composer.compose_parts(&data, false).unwrap();
    let message = text_of(&composed);
    for line in message.split("\r\n") {
        assert!(line.len() <= 76, "line of {}: {line:?}", line.len());
    }
    let boundary = message
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let bodies: Vec<String> = message
        .split(&format!("--{boundary}"))
        .filter(|part| part.contains("Content-Transfer-Encoding: quoted-printable"))
        .map(|part| {
            let body = part.split_once("\r\n\r\n").unwrap().1;
            let body = body.strip_suffix("\r\n").unwrap();
            let bytes =
                quoted_printable::decode(body, quoted_printable::ParseMode::Strict).unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    let crlf = |text: &str| {
        let mut text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        if !text.ends_with("\r\n") {
            text.push_str("\r\n");
        }
        text
    };
    assert_eq!(bodies.len(), 2, "{message}");
    assert_eq!(bodies[0], crlf(&parts.text));
    assert_eq!(bodies[1], crlf(parts.html.as_deref().unwrap()));
    assert!(
        parts
            .text
            .contains("Block 39 for people in Saint-Étienne & <Lyon> north")
    );
}

#[test]
fn derived_text_of_random_pages_matches_each_page() {
    let engine = super::TemplateEngine::new();
    let pieces = [
        "<p>",
        "</p>",
        "<a href=\"",
        "\">",
        "</a>",
        "<br>",
        "{{ x }}",
        "{{ y }}",
        "text",
        "&amp;",
        " ",
        "\n",
        "<style>",
        "</style>",
        "<!--",
        "-->",
        "<img alt=\"",
        "<td>",
        "</td>",
        "<li>",
        "<h2>",
        "</h2>",
        "<title>",
        "</title>",
        "'",
        "\"",
        ">",
        "<",
        "mailto:",
        "#",
    ];
    let values = [
        "Ada",
        "",
        " a  b ",
        "<b>&amp;</b>",
        "x\ny",
        "Zoë",
        "#top",
        "mailto:a@b.c",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |limit: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % limit as u64) as usize
    };
    let mut compared = 0;
    for _ in 0..3_000 {
        let source: String = (0..next(16)).map(|_| pieces[next(pieces.len())]).collect();
        let Ok(template) = engine.compile("t.html", &source, true) else {
            continue;
        };
        let Some(derived) = template.derive_text(html_to_text, super::html_text::tidy) else {
            continue;
        };
        let (x, y) = (values[next(values.len())], values[next(values.len())]);
        let mut variables = Variables::new([("x", x), ("y", y)]);
        let body = engine
            .render_with_text(&template, &derived, &mut variables, "r@x.example")
            .unwrap();
        let expected = html_to_text(&body.html);
        // The same visible characters in the same order. White space may differ next to a
        // value that is empty or holds a line break (the derived text folds it, as a page's
        // text does outside attributes).
        let visible = |text: &str| {
            text.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        };
        assert_eq!(
            visible(&body.text),
            visible(&expected),
            "{source:?} x={x:?} y={y:?}"
        );
        compared += 1;
    }
    assert!(compared > 1_000, "{compared}");
}

#[test]
fn a_large_template_with_many_values_is_derived() {
    // 5,000 lines and 10,000 values: the check for values that could change the page reads it
    // once (it used to read the page again for every value).
    let engine = super::TemplateEngine::new();
    let mut source = String::new();
    for n in 0..5_000 {
        source.push_str(&format!(
            "<p>Item {n} for {{{{ city }}}}: <a href=\"https://x.example/{n}?u={{{{ url(email) }}}}\">open</a></p>\n"
        ));
    }
    let template = engine.compile("big.html", &source, true).unwrap();
    let derived = template
        .derive_text(html_to_text, super::html_text::tidy)
        .unwrap();
    let mut variables = Variables::new([("city", "Köln"), ("email", "a@b.example")]);
    let body = engine
        .render_with_text(&template, &derived, &mut variables, "a@b.example")
        .unwrap();
    assert!(
        body.text
            .contains("Item 4999 for Köln: open (https://x.example/4999?u=a%40b.example)")
    );
}

#[test]
fn signed_unsubscribe_links_agree_in_header_and_body() {
    let (_dir, campaign) = campaign_with(
        "html = \"b.html\"\nlist_id = \"Acme News <news.acme.example>\"\nfeedback_id = \"nov:acme:news:herald\"\n\
         [unsubscribe]\nurl = \"https://u.acme.example/u/{token}\"\nendpoint = \"https://u.acme.example\"",
        &[(
            "b.html",
            "<p>Hi {{ first_name }}</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
        )],
    );
    let mut composer = Composer::new(&campaign).unwrap();
    // `check` knows the variable without any column of that name.
    assert!(composer.check_fields(&["first_name".into()]).is_empty());
    let secret = [3u8; 32];
    composer.sign_links(secret, 42);
    let link = composer.unsubscribe_link(7).unwrap();
    let token = link.strip_prefix("https://u.acme.example/u/").unwrap();
    assert_eq!(
        crate::token::decode(&secret, crate::token::Purpose::Unsubscribe, token),
        Ok(crate::token::Named {
            campaign: 42,
            recipient: 7
        })
    );
    let composed = composer
        .compose_unsigned(&recipient(r#"{"first_name":"Ada"}"#))
        .unwrap();
    let text = text_of(&composed);
    assert!(
        text.contains(&format!("List-Unsubscribe: <{link}>\r\n")),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{text}"
    );
    assert!(
        text.contains("List-Id: Acme News <news.acme.example>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Feedback-ID: nov:acme:news:herald\r\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("href=3D\"{link}\"")) || text.contains(&format!("href=\"{link}\"")),
        "the body's link is the header's: {text}"
    );
    // The address appears nowhere in the link.
    assert!(!link.contains("ada"), "{link}");
}

#[test]
fn a_signed_link_and_a_template_link_are_not_both_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("list.csv"), "email\n").unwrap();
    let text = "[message]\nfrom = \"a@acme.example\"\nsubject = \"s\"\ntext = \"t.txt\"\n\
                unsubscribe = \"https://acme.example/u?e={{ url(email) }}\"\n\
                [unsubscribe]\nurl = \"https://u.acme.example/u/{token}\"\n\
                [recipients]\ncsv = \"list.csv\"\n[[relay]]\nhost = \"h\"\n";
    std::fs::write(dir.path().join("t.txt"), "x").unwrap();
    let Err(crate::campaign::CampaignError::Invalid { problems, .. }) =
        Campaign::parse(text, &dir.path().join("c.toml"), &|_| true)
    else {
        panic!("both links were accepted");
    };
    assert!(
        problems.iter().any(|p| p.key == "message.unsubscribe"),
        "{problems:?}"
    );
}

/// RFC 8301: signers use at least 2048 bits here (1024 is allowed by the RFC but too weak to
/// choose now) and verifiers need only handle up to 4096, so both ends of the range are kept
/// even though aws-lc-rs itself would take keys up to 8192 bits.
#[test]
fn rsa_keys_from_2048_to_4096_bits_are_taken_and_others_refused() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let message = b"From: a@acme.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\nHello\r\n";
    for bits in ["1024", "4096", "4160"] {
        let path = dir.path().join(format!("{bits}.pem"));
        let path_text = path.to_str().unwrap();
        openssl(&["genrsa", "-traditional", "-out", path_text, bits]);
        let pem = std::fs::read(&path).unwrap();
        let loaded = DkimSigner::from_pem("acme.example", "s1", &pem);
        if bits == "4096" {
            let signer = loaded.unwrap();
            let mut signed = signer.sign(message, 1_700_000_000).unwrap().into_bytes();
            signed.extend_from_slice(message);
            let der = openssl(&["pkey", "-in", path_text, "-pubout", "-outform", "DER"]);
            let public = base64::engine::general_purpose::STANDARD.encode(der);
            let (ok, log) = dkimpy_verifies(&signed, "rsa", &public);
            assert!(ok, "dkimpy rejected a 4096-bit signature:\n{log}");
        } else {
            let reason = loaded.unwrap_err();
            assert!(reason.contains("2048 to 4096 bits"), "{bits}: {reason}");
        }
    }
}
