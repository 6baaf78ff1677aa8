//! "Open HTML file…" (issue #20): a newsletter exported from a design tool becomes the
//! campaign's HTML body. The images it names by a local path (`<img src="images/logo.png">`,
//! each candidate of a `srcset`, `<td background="bg.jpg">`, CSS `url(images/hero.png)` in a
//! `style` attribute or a `<style>` block; relative to the HTML file) are copied into the
//! campaign's folder and become inline parts: the reference turns into `cid:NAME` and NAME joins
//! `message.inline`, the way the campaign's own inline images already work (the Content-ID is
//! the file name, `compose`). Remote (`http:`, `https:`), `cid:` and `data:` references and
//! template expressions stay as written; a file that is not there is named, never guessed at.
//! Reads the HTML file and its images and writes only copies into the campaign folder; it
//! never overwrites a different file there.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::app::{AppError, ErrorKind};

/// A newsletter read for the HTML body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedHtml {
    /// The HTML, each copied image's reference now `cid:NAME`.
    pub html: String,
    /// The copied images' names in the campaign folder, in the order the HTML first shows
    /// them: the entries `message.inline` needs.
    pub inline: Vec<String>,
    /// Local references whose file is not there, as the HTML writes them.
    pub missing: Vec<String>,
}

impl LoadedHtml {
    /// What happened, for people: what was copied and what could not be found.
    pub fn summary(&self, file: &str) -> String {
        let mut text = format!("Loaded {file}");
        match self.inline.len() {
            0 => {}
            1 => text.push_str(": 1 image copied into the campaign folder as an inline image"),
            count => text.push_str(&format!(
                ": {count} images copied into the campaign folder as inline images"
            )),
        }
        if !self.missing.is_empty() {
            text.push_str(&format!(
                ". Not found beside the HTML file, so left as written (they will not show): {}",
                self.missing.join(", ")
            ));
        }
        text.push('.');
        text
    }
}

/// Reads the HTML file `file` for the campaign whose folder is `campaign_folder`, copying the
/// local images it references there.
pub fn load_html(file: &Path, campaign_folder: &Path) -> Result<LoadedHtml, AppError> {
    let html = std::fs::read_to_string(file).map_err(|error| {
        AppError::new(
            ErrorKind::File,
            format!("could not read the HTML file {}: {error}", file.display()),
        )
    })?;
    let html_folder = file.parent().unwrap_or(Path::new("."));
    let mut loaded = LoadedHtml::default();
    // Each reference is copied once, however often the HTML repeats it.
    let mut copied: HashMap<PathBuf, String> = HashMap::new();
    let mut out = String::with_capacity(html.len());
    let mut last = 0;
    for range in image_references(&html) {
        let Some(written) = html.get(range.clone()) else {
            continue;
        };
        let Some(source) = local_path(written, html_folder) else {
            continue;
        };
        let name = match copied.get(&source) {
            Some(name) => name.clone(),
            None if source.is_file() => {
                let name = copy_into(&source, campaign_folder)?;
                copied.insert(source, name.clone());
                if !loaded.inline.contains(&name) {
                    loaded.inline.push(name.clone());
                }
                name
            }
            None => {
                let written = written.trim().to_string();
                if !loaded.missing.contains(&written) {
                    loaded.missing.push(written);
                }
                continue;
            }
        };
        out.push_str(&html[last..range.start]);
        out.push_str("cid:");
        out.push_str(&name);
        last = range.end;
    }
    out.push_str(&html[last..]);
    loaded.html = out;
    Ok(loaded)
}

/// The file a reference names, when it names one on this computer: not a remote image, an
/// inline or data one, a link, or a template expression (`{{ image }}`).
fn local_path(written: &str, html_folder: &Path) -> Option<PathBuf> {
    let written = written.trim();
    let lower = written.to_ascii_lowercase();
    let remote = ["http:", "https:", "cid:", "data:", "mailto:", "//"]
        .iter()
        .any(|scheme| lower.starts_with(scheme));
    if written.is_empty() || remote || written.contains("{{") {
        return None;
    }
    let path = written
        .strip_prefix("file://")
        .unwrap_or(written)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    // Exports made on Windows write `images\logo.png`.
    let path = percent_decoded(path).replace('\\', "/");
    if path.is_empty() {
        return None;
    }
    Some(html_folder.join(path))
}

/// `%20` and the like decoded (an image named "my logo.png" is written `my%20logo.png`); a
/// sequence that is not one is kept as written.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let decoded = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(value) => {
                out.push(value);
                index += 3;
            }
            None => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copies `source` into `folder` under a name a `cid:` URL can carry, and returns the name. An
/// identical file already there is used as it is; a different one keeps its name and the copy
/// gets the next free one (`logo-2.png`).
fn copy_into(source: &Path, folder: &Path) -> Result<String, AppError> {
    let name = safe_name(source);
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem.to_string(), format!(".{extension}")),
        _ => (name.clone(), String::new()),
    };
    let bytes = std::fs::read(source).map_err(|error| {
        AppError::new(
            ErrorKind::File,
            format!("could not read the image {}: {error}", source.display()),
        )
    })?;
    for n in 1.. {
        let candidate = if n == 1 {
            name.clone()
        } else {
            format!("{stem}-{n}{extension}")
        };
        let target = folder.join(&candidate);
        match std::fs::read(&target) {
            Ok(existing) if existing == bytes => return Ok(candidate),
            Ok(_) => continue,
            Err(_) if target.exists() => continue,
            Err(_) => {
                std::fs::write(&target, &bytes).map_err(|error| {
                    AppError::new(
                        ErrorKind::File,
                        format!("could not copy the image to {}: {error}", target.display()),
                    )
                })?;
                return Ok(candidate);
            }
        }
    }
    Err(AppError::other("no free name for the image"))
}

/// The file's name with anything but letters, digits, `.`, `-` and `_` made `-`: it becomes a
/// Content-ID and a `cid:` URL (RFC 2392), where spaces and the like would need escaping.
fn safe_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.trim_matches(['.', '-']).is_empty() {
        "image".to_string()
    } else {
        cleaned
    }
}

/// Where the images the HTML loads are named: `src` of `<img>` (and `<input type="image">`),
/// `background` of any element, each candidate of a `srcset`, and each CSS `url(…)` naming an
/// image in a `style` attribute or a `<style>` block (`background-image:url(images/hero.png)`,
/// as design tools export). Byte ranges into `html`, in order.
fn image_references(html: &str) -> Vec<Range<usize>> {
    let bytes = html.as_bytes();
    let mut found = Vec::new();
    let mut index = 0;
    while let Some(offset) = html.get(index..).and_then(|rest| rest.find('<')) {
        let start = index + offset;
        if html[start..].starts_with("<!--") {
            index = html[start..]
                .find("-->")
                .map_or(bytes.len(), |end| start + end + 3);
            continue;
        }
        let (end, opens_style) = tag_attributes(html, start + 1, &mut found);
        index = end;
        if opens_style {
            // The style sheet runs to `</style` (HTML's raw text element: no tags inside).
            let close = find_ignoring_case(bytes, end, b"</style").unwrap_or(bytes.len());
            css_urls(html, end..close, &mut found);
            index = close;
        }
    }
    found
}

/// Reads one tag from just after its `<`, pushing the image references in its attributes;
/// returns where the tag ends and whether it opens a `<style>` block.
fn tag_attributes(html: &str, from: usize, found: &mut Vec<Range<usize>>) -> (usize, bool) {
    let bytes = html.as_bytes();
    let name_end = scan(bytes, from, |b| b.is_ascii_alphanumeric());
    let tag = &bytes[from..name_end];
    if tag.is_empty() {
        // `</p>`, `<!DOCTYPE …>`: nothing to read in it.
        return (scan(bytes, from, |b| b != b'>'), false);
    }
    let opens_style = tag.eq_ignore_ascii_case(b"style");
    let loads_src = tag.eq_ignore_ascii_case(b"img") || tag.eq_ignore_ascii_case(b"input");
    let mut at = name_end;
    loop {
        at = scan(bytes, at, |b| b.is_ascii_whitespace() || b == b'/');
        match bytes.get(at) {
            None => return (at, opens_style),
            Some(b'>') => return (at + 1, opens_style),
            Some(_) => {}
        }
        let attr_end = scan(bytes, at, |b| {
            !(b.is_ascii_whitespace() || b == b'=' || b == b'>' || b == b'/')
        });
        let attr = &bytes[at..attr_end.max(at + 1).min(bytes.len())];
        at = scan(bytes, attr_end.max(at + 1), |b| b.is_ascii_whitespace());
        if bytes.get(at) != Some(&b'=') {
            continue;
        }
        at = scan(bytes, at + 1, |b| b.is_ascii_whitespace());
        let value = match bytes.get(at) {
            Some(&quote @ (b'"' | b'\'')) => {
                let end = scan(bytes, at + 1, |b| b != quote);
                let value = at + 1..end;
                at = (end + 1).min(bytes.len());
                value
            }
            _ => {
                let end = scan(bytes, at, |b| !(b.is_ascii_whitespace() || b == b'>'));
                let value = at..end;
                at = end;
                value
            }
        };
        if (loads_src && attr.eq_ignore_ascii_case(b"src"))
            || attr.eq_ignore_ascii_case(b"background")
        {
            found.push(value);
        } else if attr.eq_ignore_ascii_case(b"srcset") {
            srcset_urls(bytes, value, found);
        } else if attr.eq_ignore_ascii_case(b"style") {
            css_urls(html, value, found);
        }
    }
}

/// The URL of each candidate in a `srcset` value (`a.png 1x, b@2x.png 2x`), as the HTML
/// standard splits it: a URL is a run of non-space characters (a trailing comma ends the
/// candidate), then descriptors up to the next comma.
fn srcset_urls(bytes: &[u8], value: Range<usize>, found: &mut Vec<Range<usize>>) {
    let mut at = value.start;
    while at < value.end {
        at = scan(bytes, at, |b| b.is_ascii_whitespace() || b == b',').min(value.end);
        if at >= value.end {
            return;
        }
        let url_end = scan(bytes, at, |b| !b.is_ascii_whitespace()).min(value.end);
        let mut end = url_end;
        while end > at && bytes.get(end - 1) == Some(&b',') {
            end -= 1;
        }
        if end > at {
            found.push(at..end);
        }
        at = if end < url_end {
            url_end
        } else {
            scan(bytes, url_end, |b| b != b',').min(value.end)
        };
    }
}

/// The images named by CSS `url(…)` in `html[within]`: the URL inside, without its quotes
/// (`"`, `'`, or the `&quot;` an attribute may carry them as). Only names that look like an
/// image count, so a font or an imported style sheet is never made an inline image.
fn css_urls(html: &str, within: Range<usize>, found: &mut Vec<Range<usize>>) {
    let bytes = html.as_bytes();
    let mut at = within.start;
    while let Some(open) = find_ignoring_case(bytes, at, b"url(").filter(|&o| o < within.end) {
        let mut start = scan(bytes, open + 4, |b| b.is_ascii_whitespace());
        let rest = html.get(start..within.end).unwrap_or_default();
        let close = if let Some(quote) = ["&quot;", "&#39;", "&apos;", "\"", "'"]
            .into_iter()
            .find(|quote| rest.starts_with(quote))
        {
            start += quote.len();
            html.get(start..within.end)
                .and_then(|rest| rest.find(quote))
                .map(|offset| start + offset)
        } else {
            rest.find(')').map(|offset| start + offset)
        };
        let Some(close) = close else {
            return;
        };
        let end = start + html.get(start..close).unwrap_or_default().trim_end().len();
        if html.get(start..end).is_some_and(names_an_image) {
            found.push(start..end);
        }
        at = close.max(open + 4);
    }
}

/// Whether a URL's file name ends as an image's does (query and fragment aside).
fn names_an_image(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    [
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".avif", ".ico",
    ]
    .iter()
    .any(|extension| lower.ends_with(extension))
}

/// Where `needle` (lower-case ASCII) first occurs in `bytes` from `from`, ignoring case.
fn find_ignoring_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
        .map(|offset| from + offset)
}

/// The first index from `from` whose byte does not satisfy `keep` (or the end).
fn scan(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| !keep(b)))
        .map_or(bytes.len(), |offset| from + offset)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn references(html: &str) -> Vec<&str> {
        image_references(html)
            .into_iter()
            .map(|range| &html[range])
            .collect()
    }

    #[test]
    fn finds_the_attributes_that_load_images() {
        for (html, expected) in [
            (r#"<img src="a.png">"#, vec!["a.png"]),
            (r#"<IMG alt="x > y" SRC='b c.png' />"#, vec!["b c.png"]),
            (r#"<img src=plain.gif width=10>"#, vec!["plain.gif"]),
            (
                r#"<td background="bg.jpg"><p>src="no.png"</p>"#,
                vec!["bg.jpg"],
            ),
            (
                r#"<script src="app.js"></script><img data-src="x">"#,
                vec![],
            ),
            (
                r#"<!-- <img src="old.png"> --><img src="new.png">"#,
                vec!["new.png"],
            ),
            (
                r#"<img src = "spaced.png" ><img src="#,
                vec!["spaced.png", ""],
            ),
            ("<p>1 < 2</p><img src=\"é.png\">", vec!["é.png"]),
            // srcset: each candidate's URL, descriptors and commas aside.
            (
                r#"<img srcset="a.png 1x, b@2x.png 2x,c.png">"#,
                vec!["a.png", "b@2x.png", "c.png"],
            ),
            (
                r#"<source srcset="s.webp, https://cdn.example/x.png 600w">"#,
                vec!["s.webp", "https://cdn.example/x.png"],
            ),
            // CSS url() in style attributes, quoted or not, and in <style> blocks.
            (
                r#"<td style="background-image:url(images/hero.png);color:red">"#,
                vec!["images/hero.png"],
            ),
            (
                r#"<div style='background: URL( "a b.jpg" ) no-repeat'>"#,
                vec!["a b.jpg"],
            ),
            (
                r#"<div style="background:url(&quot;q.gif&quot;)">"#,
                vec!["q.gif"],
            ),
            (
                "<style>\n.hero { background: url('bg.png'); }\n@font-face { src: url(f.woff2) }\n\
                 </STYLE><p style=\"x\">url(not-css.png)</p>",
                vec!["bg.png"],
            ),
            (
                r#"<p style="color:red">url(text.png)</p><div style="background:url(https://x.example/r.png)">"#,
                vec!["https://x.example/r.png"],
            ),
        ] {
            assert_eq!(references(html), expected, "{html}");
        }
    }

    #[test]
    fn only_files_on_this_computer_are_local() {
        let folder = Path::new("/news");
        for (written, expected) in [
            ("images/logo.png", Some("/news/images/logo.png")),
            ("images\\logo.png", Some("/news/images/logo.png")),
            ("my%20logo.png?v=2#top", Some("/news/my logo.png")),
            ("file:///srv/art/logo.png", Some("/srv/art/logo.png")),
            ("https://cdn.example/logo.png", None),
            ("HTTP://cdn.example/logo.png", None),
            ("//cdn.example/logo.png", None),
            ("cid:logo.png", None),
            ("data:image/png;base64,AAAA", None),
            ("{{ picture }}", None),
            ("  ", None),
        ] {
            assert_eq!(
                local_path(written, folder),
                expected.map(PathBuf::from),
                "{written}"
            );
        }
    }

    #[test]
    fn local_images_are_copied_as_inline_parts_and_the_rest_is_left_alone() {
        let export = tempfile::tempdir().unwrap();
        let campaign = tempfile::tempdir().unwrap();
        std::fs::create_dir(export.path().join("images")).unwrap();
        std::fs::write(export.path().join("images/logo.png"), b"logo").unwrap();
        std::fs::write(export.path().join("images/hero image.jpg"), b"hero").unwrap();
        // A different logo.png is in the campaign folder already: it is kept.
        std::fs::write(campaign.path().join("logo.png"), b"older logo").unwrap();
        let html = r#"<html><body background="images/hero%20image.jpg">
<img src="images/logo.png" alt="Acme"><img src="https://cdn.example/banner.png">
<img src="images/logo.png"><img src="images/gone.png"><img src="cid:kept.png"></body></html>"#;
        let file = export.path().join("newsletter.html");
        std::fs::write(&file, html).unwrap();

        let loaded = load_html(&file, campaign.path()).unwrap();
        assert_eq!(loaded.inline, vec!["hero-image.jpg", "logo-2.png"]);
        assert_eq!(loaded.missing, vec!["images/gone.png"]);
        assert_eq!(
            loaded.html,
            r#"<html><body background="cid:hero-image.jpg">
<img src="cid:logo-2.png" alt="Acme"><img src="https://cdn.example/banner.png">
<img src="cid:logo-2.png"><img src="images/gone.png"><img src="cid:kept.png"></body></html>"#
        );
        let read = |name: &str| std::fs::read(campaign.path().join(name)).unwrap();
        assert_eq!(read("logo.png"), b"older logo");
        assert_eq!(read("logo-2.png"), b"logo");
        assert_eq!(read("hero-image.jpg"), b"hero");
        assert!(
            loaded
                .summary("newsletter.html")
                .contains("images/gone.png")
        );

        // Opening it again copies nothing twice.
        let again = load_html(&file, campaign.path()).unwrap();
        assert_eq!(again, loaded);
        assert_eq!(std::fs::read_dir(campaign.path()).unwrap().count(), 3);
    }

    /// Issue #20: design tools put images in CSS and `srcset` too; each local one is copied
    /// and named by `cid:`, remote ones and template expressions stay as written.
    #[test]
    fn images_in_css_and_srcset_are_copied_as_inline_parts() {
        let export = tempfile::tempdir().unwrap();
        let campaign = tempfile::tempdir().unwrap();
        std::fs::create_dir(export.path().join("images")).unwrap();
        for name in ["hero.png", "tile.jpg", "logo.png", "logo@2x.png"] {
            std::fs::write(export.path().join("images").join(name), name).unwrap();
        }
        let html = r#"<style>
.hero { background-image: url("images/tile.jpg"); }
.far { background: url(https://cdn.example/far.png) }
</style>
<td style="background-image:url(images/hero.png);padding:0">
<img src="images/logo.png" srcset="images/logo.png 1x, images/logo@2x.png 2x, {{ big }} 3x, images/none.png 4x">
<div style="background:url({{ picture }})"></div>"#;
        let file = export.path().join("index.html");
        std::fs::write(&file, html).unwrap();

        let loaded = load_html(&file, campaign.path()).unwrap();
        assert_eq!(
            loaded.inline,
            vec!["tile.jpg", "hero.png", "logo.png", "logo-2x.png"]
        );
        assert_eq!(loaded.missing, vec!["images/none.png"]);
        assert_eq!(
            loaded.html,
            r#"<style>
.hero { background-image: url("cid:tile.jpg"); }
.far { background: url(https://cdn.example/far.png) }
</style>
<td style="background-image:url(cid:hero.png);padding:0">
<img src="cid:logo.png" srcset="cid:logo.png 1x, cid:logo-2x.png 2x, {{ big }} 3x, images/none.png 4x">
<div style="background:url({{ picture }})"></div>"#
        );
        assert_eq!(
            std::fs::read(campaign.path().join("logo-2x.png")).unwrap(),
            b"logo@2x.png"
        );
    }

    #[test]
    fn an_unreadable_html_file_is_a_sentence() {
        let campaign = tempfile::tempdir().unwrap();
        let error = load_html(&campaign.path().join("nope.html"), campaign.path()).unwrap_err();
        assert!(error.to_string().contains("could not read the HTML file"));
    }
}
