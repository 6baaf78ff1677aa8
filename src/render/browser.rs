//! "Open in browser": the same HTML the preview draws, written to a temporary file with its
//! `cid:` images turned into `data:` URIs (a browser cannot see the message's other parts), and
//! handed to the desktop's browser. The only user of `webbrowser`.

use std::path::PathBuf;

use base64::Engine;

use super::InlineImage;

/// The page a browser is given: every `cid:NAME` naming an inline image becomes a `data:` URI
/// (RFC 2392 names the part; RFC 2397 inlines it). Other `cid:` references are left alone.
/// Names are matched without regard to ASCII case, as the preview matches them.
pub fn page_html(html: &str, inline: &[InlineImage]) -> String {
    let mut page = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find("cid:") {
        let quoted = at > 0 && matches!(rest.as_bytes()[at - 1], b'"' | b'\'');
        let after = &rest[at + 4..];
        let quote = if quoted {
            rest.as_bytes()[at - 1] as char
        } else {
            '"'
        };
        let name = after.split(quote).next().unwrap_or_default();
        let image = inline.iter().find(|image| {
            quoted && after.len() > name.len() && image.content_id.eq_ignore_ascii_case(name)
        });
        page.push_str(&rest[..at]);
        match image {
            Some(image) => {
                let mime = mime_guess::from_path(&image.content_id).first_or_octet_stream();
                page.push_str(&format!(
                    "data:{mime};base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(&image.bytes)
                ));
                rest = &after[name.len()..];
            }
            None => {
                page.push_str("cid:");
                rest = after;
            }
        }
    }
    page.push_str(rest);
    page
}

/// Writes the page to a new temporary file and opens it; returns the file's path. The file is
/// created afresh with a random name (never through a link another user planted) and readable
/// only by the user, since it holds a recipient's personal message; it stays for the browser.
pub fn open(html: &str, inline: &[InlineImage]) -> Result<PathBuf, String> {
    let written = tempfile::Builder::new()
        .prefix("herald-preview-")
        .suffix(".html")
        .tempfile()
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, page_html(html, inline).as_bytes())?;
            file.keep().map_err(|error| error.error)
        });
    let path = match written {
        Ok((_, path)) => path,
        Err(error) => return Err(format!("could not write the page for the browser: {error}")),
    };
    webbrowser::open(&path.to_string_lossy()).map_err(|error| {
        format!(
            "no browser could be opened ({error}); the page is {}",
            path.display()
        )
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_images_become_data_uris_and_others_stay() {
        let inline = [InlineImage {
            content_id: "logo.png".into(),
            bytes: vec![1, 2, 3],
        }];
        let page = page_html(
            r#"<img src="cid:logo.png"><img src='cid:logo.png'><img src="cid:other.png">"#,
            &inline,
        );
        assert_eq!(
            page,
            r#"<img src="data:image/png;base64,AQID"><img src='data:image/png;base64,AQID'><img src="cid:other.png">"#
        );
    }

    #[test]
    fn cid_names_match_without_case_as_the_preview_does() {
        let inline = [InlineImage {
            content_id: "logo.png".into(),
            bytes: vec![1, 2, 3],
        }];
        let page = page_html(r#"<img src="cid:Logo.PNG"> cid:logo.png "cid:"#, &inline);
        assert_eq!(
            page,
            r#"<img src="data:image/png;base64,AQID"> cid:logo.png "cid:"#
        );
    }
}
