//! The endpoint's pages: plain HTML with no script, no external resource and no address (the
//! endpoint never knows one). The confirmation page carries a one-button form that POSTs the
//! same body a mailbox provider's one-click request does (RFC 8058 §3.2), so a person's click
//! and Gmail's POST take one path, and a link scanner that only GETs unsubscribes nobody.

const STYLE: &str = "body{font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em;line-height:1.5}button{font-size:1.1em;padding:.5em 1.5em}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
}

/// The page a GET of a valid link shows: a question and one button. The form has no action,
/// so it posts back to the very URL shown, whatever path a reverse proxy put in front.
pub fn confirm() -> String {
    page(
        "Unsubscribe",
        "<h1>Unsubscribe?</h1>\n<p>Press the button to stop receiving these emails.</p>\n\
         <form method=\"post\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <input type=\"hidden\" name=\"source\" value=\"page\">\
         <button type=\"submit\" id=\"unsubscribe\">Unsubscribe</button></form>",
    )
}

/// The answer to a POST that was recorded (or had been before).
pub fn done() -> String {
    page(
        "Unsubscribed",
        "<h1 id=\"done\">You are unsubscribed.</h1>\n<p>You will not receive these emails any more.</p>",
    )
}

/// The answer to a link that is not one of ours (edited, truncated, forged).
pub fn invalid() -> String {
    page(
        "Link not valid",
        "<h1>This unsubscribe link is not valid.</h1>\n<p>Please use the link from the email itself.</p>",
    )
}

/// The answer when the record could not be written: the provider is asked to try again.
pub fn unavailable() -> String {
    page(
        "Try again later",
        "<h1>Something went wrong.</h1>\n<p>Your request was not recorded; please try again in a few minutes.</p>",
    )
}

/// The answer to a POST without `List-Unsubscribe=One-Click`.
pub fn bad_request() -> String {
    page(
        "Bad request",
        "<h1>This request is not an unsubscribe.</h1>\n<p>Open the link from the email and press the button.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_no_script_and_the_form_posts_one_click() {
        for text in [confirm(), done(), invalid(), unavailable(), bad_request()] {
            assert!(!text.to_ascii_lowercase().contains("<script"), "{text}");
            assert!(!text.contains("http"), "no external resource: {text}");
        }
        let form = confirm();
        assert!(form.contains("<form method=\"post\">"));
        assert!(form.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    }
}
