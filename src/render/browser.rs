//! "Open in browser": the same HTML the preview draws, written to a temporary file with its
//! `cid:` images turned into `data:` URIs (a browser cannot see the message's other parts), and
//! handed to the desktop's browser. The only user of `webbrowser`.

use std::path::PathBuf;

use base64::Engine;

use super::InlineImage;

/// The page a browser is given: every `cid:NAME` naming an inline image becomes a `data:` URI
/// (RFC 2392 names the part; RFC 2397 inlines it). Other `cid:` references are left alone.
pub fn page_html(html: &str, inline: &[InlineImage]) -> String {
    let mut page = html.to_string();
    for image in inline {
        let mime = mime_guess::from_path(&image.content_id).first_or_octet_stream();
        let data = format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&image.bytes)
        );
        for quote in ['"', '\''] {
            page = page.replace(
                &format!("{quote}cid:{}{quote}", image.content_id),
                &format!("{quote}{data}{quote}"),
            );
        }
    }
    page
}

/// Writes the page to the temporary directory and opens it; returns the file's path.
pub fn open(html: &str, inline: &[InlineImage]) -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("herald-preview-{}.html", std::process::id()));
    std::fs::write(&path, page_html(html, inline))
        .map_err(|error| format!("could not write {}: {error}", path.display()))?;
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
}
