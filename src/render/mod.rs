//! The rendered preview (issue #14): one recipient's HTML drawn as a mail client would draw it,
//! into an RGBA image the window shows as a texture. The only user of `litehtml` (a C++ layout
//! engine, drawn with tiny-skia and cosmic-text) and of `image`. Remote images are fetched only
//! when the request asks for them (`remote_images`, off by default, as mail clients do, for
//! privacy); `cid:` images come from the campaign's inline files and `data:` images from the
//! HTML itself. Never touches egui or the store, and of the engine borrows only `engine::smtp`'s
//! verified TLS configuration (in `fetch`); `worker` runs renders off the window's thread,
//! `browser` writes the same HTML for a real browser.

pub mod browser;
mod container;
pub mod fetch;
pub mod worker;

use std::panic::{AssertUnwindSafe, catch_unwind};

use container::ScalingContainer;

/// The widths a marketer checks: a desktop client's reading pane and a phone.
pub const DESKTOP_WIDTH_PX: u32 = 640;
pub const PHONE_WIDTH_PX: u32 = 375;
/// Taller documents are cut here (a 16,000 px newsletter is already twenty screens).
pub const MAX_HEIGHT_PX: u32 = 16_000;
/// The screen height media queries see while the page is laid out.
const VIEWPORT_HEIGHT_PX: u32 = 800;

/// One image the message carries inline, named by its Content-ID (Herald's is the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    pub content_id: String,
    pub bytes: Vec<u8>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub html: String,
    pub width_px: u32,
    pub inline: Vec<InlineImage>,
    /// Fetch `http(s)` images; when false they are drawn as placeholders and never requested.
    pub remote_images: bool,
}

/// The drawn message: opaque RGBA rows of `width_px`, composited over white as clients show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The screen width the page was laid out for (what media queries saw).
    pub viewport_px: u32,
    /// The drawn width: wider than the screen when the message does not fit it (a fixed
    /// 600 px table on a phone), drawn whole as a phone's client lets one scroll to it.
    pub width_px: u32,
    pub height_px: u32,
    pub rgba: Vec<u8>,
    /// Remote images drawn as placeholders (not fetched, or fetched and unreadable).
    pub blocked_images: usize,
    /// The document was taller than `MAX_HEIGHT_PX` and was cut.
    pub cut: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the HTML contains a NUL character, which no mail client shows")]
    Nul,
    #[error("the HTML could not be laid out")]
    Layout,
    #[error("the renderer failed on this HTML ({0})")]
    Panicked(String),
    #[error("the width must be between 100 and 4000 pixels, not {0}")]
    Width(u32),
}

/// Renders with the given fetcher for remote images (called only when `remote_images` is set).
/// A panic inside the renderer (a young crate over C++) becomes an error, never the window's.
pub fn render_with(
    request: &RenderRequest,
    fetch_remote: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Rendered, RenderError> {
    if !(100..=4000).contains(&request.width_px) {
        return Err(RenderError::Width(request.width_px));
    }
    if request.html.contains('\0') {
        return Err(RenderError::Nul);
    }
    match catch_unwind(AssertUnwindSafe(|| draw(request, fetch_remote))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(RenderError::Panicked(message))
        }
    }
}

/// Renders with remote images fetched over plain HTTP(S) by `fetch::get` when asked.
pub fn render(request: &RenderRequest) -> Result<Rendered, RenderError> {
    render_with(request, &|url| match fetch::get(url) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            // The host only: tracking URLs often carry the recipient's address.
            tracing::debug!(%error, host = url_host(url), "a remote image stays a placeholder");
            None
        }
    })
}

/// The most pixels one image may have, decoded or scaled: 4,000 × 4,000 (64 MB of RGBA).
const MAX_IMAGE_PIXELS: u64 = 4_000 * 4_000;

/// Decodes an image within bounds (the image crate's default would allow 512 MB), so a hostile
/// or careless file costs a placeholder, not the window's memory.
fn decode_bounded(bytes: &[u8]) -> image::ImageResult<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_000);
    limits.max_image_height = Some(MAX_HEIGHT_PX);
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
    reader.limits(limits);
    reader.decode()
}

/// The host part of an http(s) URL, for logs.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("//").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Rules mail clients apply that litehtml's default stylesheet lacks. `align="center"` on a
/// cell centres the tables inside it in every client (the HTML standard's legacy alignment),
/// which is how nearly every newsletter centres its 600 px column.
const CLIENT_CSS: &str = "\
td[align=center] > table, th[align=center] > table, div[align=center] > table, \
center > table, table[align=center] { margin-left: auto; margin-right: auto; }\n\
td[align=right] > table, table[align=right] { margin-left: auto; }\n\
img { max-width: 100%; }\n";

fn draw(
    request: &RenderRequest,
    fetch_remote: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Rendered, RenderError> {
    let width = request.width_px;
    let cid = |id: &str| {
        request
            .inline
            .iter()
            .find(|image| image.content_id.eq_ignore_ascii_case(id))
            .map(|image| image.bytes.clone())
    };
    let blocked = std::cell::Cell::new(0usize);
    let placeholder = placeholder_png();
    // Every remote `src` is answered: with the image when asked and it arrives, else with the
    // placeholder, so blocked images keep their box and show the reader something is missing.
    let remote = |url: &str| {
        let is_remote =
            url.starts_with("http://") || url.starts_with("https://") || url.starts_with("//");
        if !is_remote {
            return None;
        }
        let fetched = if request.remote_images {
            // A scheme-relative URL, as a mail client resolves it: over https.
            match url.strip_prefix("//") {
                Some(rest) => fetch_remote(&format!("https://{rest}")),
                None => fetch_remote(url),
            }
        } else {
            None
        };
        let usable = fetched.filter(|bytes| decode_bounded(bytes).is_ok());
        if usable.is_none() {
            blocked.set(blocked.get() + 1);
        }
        Some(usable.unwrap_or_else(|| placeholder.clone()))
    };
    let prepared =
        litehtml::email::prepare_email_html(request.html.as_bytes(), Some(&cid), Some(&remote));
    let mut container = ScalingContainer::new(width, VIEWPORT_HEIGHT_PX);
    let draw_size = container.draw_size.clone();
    for (uri, bytes) in &prepared.images {
        container.load_image_data(uri, bytes);
    }
    // litehtml's preparation finds only `src` images; a CSS background (`url(cid:hero.png)`,
    // as "Open HTML file…" writes for a design tool's export, issue #20) asks the container by
    // the same `cid:` name, so every inline image is there under it too.
    for image in &request.inline {
        let uri = format!("cid:{}", image.content_id);
        if !prepared.images.iter().any(|(loaded, _)| *loaded == uri) {
            container.load_image_data(&uri, &image.bytes);
        }
    }
    let (drawn_width, height, cut) = {
        let mut document =
            litehtml::Document::from_html(&prepared.html, &mut container, None, Some(CLIENT_CSS))
                .map_err(|_| RenderError::Layout)?;
        let content_width = document.render(width as f32);
        let drawn_width = (content_width.ceil() as u32).clamp(width, 4000);
        let full = document.height().ceil().max(1.0) as u32;
        let height = full.min(MAX_HEIGHT_PX);
        draw_size.set(Some((drawn_width, height)));
        document.draw(
            litehtml::DrawContext::default(),
            0.0,
            0.0,
            Some(litehtml::Position {
                x: 0.0,
                y: 0.0,
                width: drawn_width as f32,
                height: height as f32,
            }),
        );
        (drawn_width, height, full > MAX_HEIGHT_PX)
    };
    if draw_size.take().is_some() {
        // Nothing was drawn (an empty page): a blank buffer of the page's size.
        container.inner.resize(drawn_width, height);
    }
    let pixels = container.inner.pixels();
    let used = (drawn_width as usize) * (height as usize) * 4;
    let Some(pixels) = pixels.get(..used) else {
        return Err(RenderError::Layout);
    };
    Ok(Rendered {
        viewport_px: width,
        width_px: drawn_width,
        height_px: height,
        rgba: over_white(pixels),
        blocked_images: blocked.get(),
        cut,
    })
}

/// tiny-skia draws premultiplied RGBA over transparency; a client's page is white beneath.
fn over_white(premultiplied: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(premultiplied.len());
    for pixel in premultiplied.chunks_exact(4) {
        let [r, g, b, a] = [pixel[0], pixel[1], pixel[2], pixel[3]];
        let white = 255 - a;
        out.extend_from_slice(&[
            r.saturating_add(white),
            g.saturating_add(white),
            b.saturating_add(white),
            255,
        ]);
    }
    out
}

/// A light grey box with a darker frame and a cross, stretched to the image's own size.
fn placeholder_png() -> Vec<u8> {
    let size = 48u32;
    let mut img = image::RgbaImage::new(size, size);
    for (x, y, pixel) in img.enumerate_pixels_mut() {
        let frame = x == 0 || y == 0 || x == size - 1 || y == size - 1;
        let cross = x == y || x + y == size - 1;
        *pixel = if frame || cross {
            image::Rgba([176, 182, 190, 255])
        } else {
            image::Rgba([233, 236, 240, 255])
        };
    }
    encode_png(size, size, img.as_raw()).unwrap_or_default()
}

/// RGBA rows to PNG bytes (snapshots, placeholders).
pub fn encode_png(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::write_buffer_with_format(
        &mut out,
        rgba,
        width,
        height,
        image::ExtendedColorType::Rgba8,
        image::ImageFormat::Png,
    )
    .map_err(|error| error.to_string())?;
    Ok(out.into_inner())
}

/// PNG bytes to (width, height, RGBA rows).
pub fn decode_png(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let img = image::load_from_memory(bytes).map_err(|error| error.to_string())?;
    let rgba = img.to_rgba8();
    Ok((rgba.width(), rgba.height(), rgba.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(html: &str, width_px: u32) -> RenderRequest {
        RenderRequest {
            html: html.to_string(),
            width_px,
            inline: Vec::new(),
            remote_images: false,
        }
    }

    #[test]
    fn a_background_colour_fills_the_page() {
        let rendered = render(&request(
            r#"<body style="margin:0"><div style="background:#ff0000;height:50px"></div></body>"#,
            200,
        ))
        .unwrap();
        assert_eq!(rendered.width_px, 200);
        assert!(rendered.height_px >= 50);
        assert_eq!(&rendered.rgba[..4], &[255, 0, 0, 255]);
    }

    #[test]
    fn images_beyond_the_bounds_are_refused_not_decoded() {
        let fits = encode_png(2, 2, &[255; 16]).unwrap();
        assert!(decode_bounded(&fits).is_ok());
        let wide = encode_png(16_001, 1, &vec![255; 16_001 * 4]).unwrap();
        assert!(decode_bounded(&wide).is_err());
    }

    #[test]
    fn errors_are_sentences_not_panics() {
        assert_eq!(render(&request("a\0b", 640)), Err(RenderError::Nul));
        assert_eq!(
            render(&request("<p>x</p>", 10)),
            Err(RenderError::Width(10))
        );
    }

    #[test]
    fn remote_images_are_not_asked_for_when_off() {
        let asked = std::cell::Cell::new(0);
        let html = r#"<img src="https://tracker.example/p.png" width="20" height="20">"#;
        let rendered = render_with(&request(html, 200), &|_| {
            asked.set(asked.get() + 1);
            None
        })
        .unwrap();
        assert_eq!(asked.get(), 0);
        assert_eq!(rendered.blocked_images, 1);
    }
}
