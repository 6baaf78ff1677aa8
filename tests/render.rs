//! The rendered preview (issue #14): reference emails drawn and compared pixel by pixel with
//! PNG snapshots kept in `tests/samples/render/` (with a tolerance for font rasterizing), remote
//! images never fetched unless asked (a real local HTTP listener sees no connection), `cid:`
//! images drawn, and the Compose preview's Rendered view driven through egui_kittest.
//! `HERALD_UPDATE_SNAPSHOTS=1 cargo test --test render` rewrites the snapshots.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::app::service::PreviewData;
use herald::render::{self, InlineImage, RenderRequest, Rendered, fetch};
use herald::ui::{PreviewWidth, RenderedView};

/// A channel may differ by this much before a pixel counts as different.
const CHANNEL_TOLERANCE: u8 = 40;
/// At most this share of pixels may differ.
const DIFFERING_SHARE: f64 = 0.01;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/samples/render")
}

/// The newsletter's `cid:logo.png`: an orange square beside blue and white checks.
fn logo_png() -> Vec<u8> {
    let (w, h) = (120u32, 40u32);
    let mut rgba = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let checked = ((x / 10) + (y / 10)) % 2 == 0;
            let rgb = if x < 40 {
                [224, 122, 47]
            } else if checked {
                [255, 255, 255]
            } else {
                [200, 220, 240]
            };
            rgba.extend_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
        }
    }
    render::encode_png(w, h, &rgba).unwrap()
}

fn solid_png(rgb: [u8; 3]) -> Vec<u8> {
    let rgba: Vec<u8> = (0..16 * 16)
        .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
        .collect();
    render::encode_png(16, 16, &rgba).unwrap()
}

fn sample_request(name: &str, width_px: u32) -> RenderRequest {
    RenderRequest {
        html: std::fs::read_to_string(samples().join(format!("{name}.html"))).unwrap(),
        width_px,
        inline: vec![InlineImage {
            content_id: "logo.png".into(),
            bytes: logo_png(),
        }],
        remote_images: false,
    }
}

fn pixel(rendered: &Rendered, x: u32, y: u32) -> [u8; 3] {
    let at = ((y * rendered.width_px + x) * 4) as usize;
    [
        rendered.rgba[at],
        rendered.rgba[at + 1],
        rendered.rgba[at + 2],
    ]
}

/// Renders `name` at `width_px` and compares it with its snapshot.
fn check_snapshot(name: &str, width_px: u32) {
    let rendered = render::render(&sample_request(name, width_px)).unwrap();
    let path = samples().join(format!("{name}-{width_px}.png"));
    if std::env::var_os("HERALD_UPDATE_SNAPSHOTS").is_some() {
        let png = render::encode_png(rendered.width_px, rendered.height_px, &rendered.rgba);
        std::fs::write(&path, png.unwrap()).unwrap();
        return;
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "no snapshot {} ({error}); make it with HERALD_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    let (width, height, expected) = render::decode_png(&bytes).unwrap();
    assert_eq!(
        (rendered.width_px, rendered.height_px),
        (width, height),
        "{name} at {width_px} px changed size"
    );
    let differing = rendered
        .rgba
        .chunks_exact(4)
        .zip(expected.chunks_exact(4))
        .filter(|(got, want)| {
            got.iter()
                .zip(want.iter())
                .any(|(a, b)| a.abs_diff(*b) > CHANNEL_TOLERANCE)
        })
        .count();
    let share = differing as f64 / (width as f64 * height as f64);
    assert!(
        share <= DIFFERING_SHARE,
        "{name} at {width_px} px: {differing} pixels ({:.2} %) differ from {}",
        share * 100.0,
        path.display()
    );
}

#[test]
fn newsletter_matches_its_snapshots_at_desktop_and_phone_width() {
    check_snapshot("newsletter", render::DESKTOP_WIDTH_PX);
    check_snapshot("newsletter", render::PHONE_WIDTH_PX);
}

#[test]
fn letter_matches_its_snapshot() {
    check_snapshot("letter", render::DESKTOP_WIDTH_PX);
}

#[test]
fn promo_matches_its_snapshot() {
    check_snapshot("promo", render::DESKTOP_WIDTH_PX);
}

#[test]
fn the_600px_column_is_centred_as_clients_centre_it() {
    let rendered = render::render(&sample_request("newsletter", 640)).unwrap();
    // The white column spans 20..620: the page colour shows on both sides at the same depth.
    let page = [0xee, 0xf1, 0xf5];
    let y = 200;
    assert_eq!(pixel(&rendered, 10, y), page);
    assert_eq!(pixel(&rendered, 630, y), page);
    assert_eq!(pixel(&rendered, 30, y), [255, 255, 255]);
    assert_eq!(pixel(&rendered, 610, y), [255, 255, 255]);
}

#[test]
fn cid_images_are_drawn_from_the_inline_files() {
    let html = r#"<body style="margin:0"><img src="cid:green.png" width="40" height="40" style="display:block"></body>"#;
    let request = RenderRequest {
        html: html.into(),
        width_px: 200,
        inline: vec![InlineImage {
            content_id: "green.png".into(),
            bytes: solid_png([0, 200, 0]),
        }],
        remote_images: false,
    };
    let rendered = render::render(&request).unwrap();
    assert_eq!(pixel(&rendered, 20, 20), [0, 200, 0]);
    assert_eq!(rendered.blocked_images, 0);
}

/// Issue #20: "Open HTML file…" turns a design tool's `background-image:url(images/hero.png)`
/// into `url(cid:hero.png)`; the preview draws it from the inline files as a client does.
#[test]
fn css_background_cid_images_are_drawn_from_the_inline_files() {
    let html = r#"<body style="margin:0"><div style="width:80px;height:40px;background-image:url(cid:blue.png);background-size:cover"></div><div style="width:80px;height:40px;background:url('cid:green.png')"></div></body>"#;
    let request = RenderRequest {
        html: html.into(),
        width_px: 200,
        inline: vec![
            InlineImage {
                content_id: "blue.png".into(),
                bytes: solid_png([0, 0, 200]),
            },
            InlineImage {
                content_id: "green.png".into(),
                bytes: solid_png([0, 200, 0]),
            },
        ],
        remote_images: false,
    };
    let rendered = render::render(&request).unwrap();
    assert_eq!(pixel(&rendered, 40, 20), [0, 0, 200]);
    assert_eq!(pixel(&rendered, 8, 48), [0, 200, 0]);
}

/// An HTTP server on loopback that answers every GET with a red PNG and counts connections.
fn image_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        let body = solid_png([220, 0, 0]);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (base, connections)
}

fn remote_html(base: &str) -> String {
    format!(
        r#"<html><head><link rel="stylesheet" href="{base}/style.css"></head>
        <body style="margin:0"><img src="{base}/open.png" width="40" height="40" style="display:block">
        <div style="background-image:url({base}/bg.png);height:20px"></div></body></html>"#
    )
}

#[test]
fn remote_images_are_not_fetched_when_off_and_are_when_asked() {
    let (base, connections) = image_server();
    let mut request = RenderRequest {
        html: remote_html(&base),
        width_px: 200,
        inline: Vec::new(),
        remote_images: false,
    };
    let off = render::render(&request).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a remote image was fetched while off"
    );
    assert_eq!(off.blocked_images, 1);
    assert_ne!(pixel(&off, 20, 20), [220, 0, 0]);

    request.remote_images = true;
    let on = render::render(&request).unwrap();
    assert!(connections.load(Ordering::SeqCst) >= 1);
    assert_eq!(on.blocked_images, 0);
    assert_eq!(pixel(&on, 20, 20), [220, 0, 0]);
}

// --- The Rendered view, through egui_kittest ---

fn preview(html: &str) -> PreviewData {
    PreviewData {
        index: 0,
        email: "ada@example.com".into(),
        subject: "Spring news".into(),
        html: Some(html.into()),
        inline_images: vec![("logo.png".into(), logo_png())],
        ..PreviewData::default()
    }
}

type State = (RenderedView, PreviewData);

fn view_harness(html: &str) -> Harness<'static, State> {
    Harness::builder()
        .with_size(egui::vec2(900.0, 900.0))
        .build_ui_state(
            |ui, state: &mut State| state.0.ui(ui, &state.1),
            (RenderedView::default(), preview(html)),
        )
}

/// Steps frames until a label containing `text` shows, failing rather than hanging.
fn wait_for(harness: &mut Harness<'_, State>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        if harness.query_by_label_contains(text).is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {text:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_view_renders_at_desktop_width_then_phone_width() {
    let html = std::fs::read_to_string(samples().join("newsletter.html")).unwrap();
    let mut harness = view_harness(&html);
    wait_for(&mut harness, "640 px wide");
    harness.get_by_label("Phone").click();
    wait_for(&mut harness, "375 px wide");
    assert_eq!(harness.state().0.width, PreviewWidth::Phone);
    assert!(harness.query_by_label_contains("640 px wide").is_none());
}

#[test]
fn the_remote_images_toggle_loads_them_only_when_ticked() {
    let (base, connections) = image_server();
    let mut harness = view_harness(&remote_html(&base));
    wait_for(&mut harness, "1 remote image not loaded");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    harness.get_by_label("Load remote images").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.state().0.is_rendering()
        || harness.query_by_label_contains("not loaded").is_some()
    {
        harness.step();
        assert!(Instant::now() < deadline, "the remote image never loaded");
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for(&mut harness, "640 px wide");
    assert!(connections.load(Ordering::SeqCst) >= 1);
    assert!(harness.state().0.remote_images);
}

#[test]
fn a_renderer_error_is_a_sentence_in_the_view() {
    let mut harness = view_harness("<p>broken\0</p>");
    wait_for(
        &mut harness,
        "The rendered view could not be drawn: the HTML contains a NUL character",
    );
}

#[test]
fn a_newsletter_taller_than_a_texture_shows_in_bands() {
    // egui_kittest's largest texture side is 2,048 px; this page is 5,000 px tall.
    let mut harness = view_harness(
        r#"<body style="margin:0"><div style="height:5000px;background:#abcdef"></div></body>"#,
    );
    wait_for(&mut harness, "640 px wide, 5000 px tall");
    // 5,000 px in bands of at most 2,048: three textures.
    assert_eq!(harness.state().0.bands(), 3);
}

#[test]
fn a_message_wider_than_a_texture_says_so_instead_of_failing() {
    // Wider than egui_kittest's largest texture side (2,048 px): before, the upload panicked.
    let mut harness = view_harness(
        r#"<body style="margin:0"><table width="3000"><tr><td>wide</td></tr></table></body>"#,
    );
    wait_for(&mut harness, "3000 px wide, wider than this screen");
}

#[test]
fn a_stale_render_is_dropped_not_shown() {
    let html = std::fs::read_to_string(samples().join("newsletter.html")).unwrap();
    let mut harness = view_harness(&html);
    wait_for(&mut harness, "640 px wide");
    // Phone, then back to Desktop before the phone render can have come back.
    harness.get_by_label("Phone").click();
    harness.step();
    harness.get_by_label("Desktop").click();
    harness.step();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.state().0.is_rendering() {
        harness.step();
        assert!(Instant::now() < deadline, "the render never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
    assert!(harness.query_by_label_contains("640 px wide").is_some());
    assert!(harness.query_by_label_contains("375 px wide").is_none());
}

#[test]
fn a_message_wider_than_the_phone_is_drawn_whole_and_said_so() {
    let rendered = render::render(&sample_request("newsletter", render::PHONE_WIDTH_PX)).unwrap();
    assert_eq!(rendered.viewport_px, 375);
    assert_eq!(
        rendered.width_px, 600,
        "the fixed 600 px column is drawn whole"
    );
    let html = std::fs::read_to_string(samples().join("newsletter.html")).unwrap();
    let mut harness = view_harness(&html);
    wait_for(&mut harness, "640 px wide");
    assert!(
        harness
            .query_by_label_contains("wider than this screen")
            .is_none()
    );
    harness.get_by_label("Phone").click();
    wait_for(
        &mut harness,
        "the message is 600 px wide, wider than this screen",
    );
}

#[test]
fn https_images_are_fetched_with_their_certificate_checked() {
    let openssl = std::process::Command::new("openssl")
        .arg("version")
        .output();
    if crate::support::tools::skip_if_missing(
        openssl.is_err().then(|| "openssl is not installed".into()),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    crate::support::postfix::make_certificates(dir.path());
    std::fs::write(dir.path().join("red.png"), solid_png([220, 0, 0])).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // openssl's own TLS server, answering `GET /red.png HTTP/1.0` with the file (-WWW).
    let mut server = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "s_server",
            "-quiet",
            "-WWW",
            "-cert",
            "server.pem",
            "-key",
            "server.key",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}/red.png");
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let request = RenderRequest {
        html: format!(
            r#"<body style="margin:0"><img src="{url}" width="40" height="40" style="display:block"></body>"#
        ),
        width_px: 200,
        inline: Vec::new(),
        remote_images: true,
    };
    let trusted = render::render_with(&request, &|url| fetch::get_trusting(url, Some(&ca)).ok());
    // Without the test's CA the certificate is a stranger's: no image, a placeholder.
    let untrusted = fetch::get(&url);
    let _ = server.kill();
    let _ = server.wait();
    let trusted = trusted.unwrap();
    assert_eq!(trusted.blocked_images, 0);
    assert_eq!(pixel(&trusted, 20, 20), [220, 0, 0]);
    assert!(untrusted.is_err(), "an untrusted certificate was accepted");
}

#[test]
fn a_server_trickling_an_image_is_cut_at_the_fetch_deadline() {
    // A byte every second: only the whole-fetch deadline (10 s) ends it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read, Write};
            // As a server does: the request's head first, then the answer.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n");
            for _ in 0..60 {
                std::thread::sleep(Duration::from_secs(1));
                if stream.write_all(b"x").is_err() {
                    return;
                }
            }
        }
    });
    let started = Instant::now();
    let fetched = fetch::get(&format!("http://127.0.0.1:{port}/pixel.png"));
    let took = started.elapsed();
    assert!(fetched.is_err(), "a trickled image was taken");
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(20),
        "cut after {took:?}"
    );
}
