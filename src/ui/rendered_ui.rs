//! The Compose preview's "Rendered" view: the chosen recipient's HTML as a mail client shows it,
//! at desktop or phone width, remote images off unless asked, and "Open in browser". Drawing
//! happens on the render worker's thread (`crate::render::worker`); this view only asks for a
//! render when what it shows changes, uploads the finished image as a texture, and drops
//! answers for anything it no longer shows.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::mpsc::{Receiver, channel};

use crate::app::service::PreviewData;
use crate::render::worker::{Done, RenderWorker};
use crate::render::{DESKTOP_WIDTH_PX, InlineImage, PHONE_WIDTH_PX, RenderRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PreviewWidth {
    #[default]
    Desktop,
    Phone,
}

impl PreviewWidth {
    pub fn px(self) -> u32 {
        match self {
            PreviewWidth::Desktop => DESKTOP_WIDTH_PX,
            PreviewWidth::Phone => PHONE_WIDTH_PX,
        }
    }
}

enum State {
    Idle,
    Rendering,
    Ready {
        viewport_px: u32,
        width_px: u32,
        height_px: u32,
        blocked_images: usize,
        cut: bool,
        elapsed_ms: u64,
    },
    Failed(String),
}

/// A finished render made ready for upload on the worker's thread: the image cut into bands
/// no taller than the GPU's largest texture side, already in egui's pixel type.
struct Bands {
    viewport_px: u32,
    width_px: u32,
    height_px: u32,
    blocked_images: usize,
    cut: bool,
    images: Vec<egui::ColorImage>,
}

enum Arrived {
    Rendered {
        generation: u64,
        result: Result<Bands, String>,
        elapsed_ms: u64,
    },
    Opened(Result<std::path::PathBuf, String>),
}

/// Cuts the page into horizontal bands within the GPU's largest texture side. A page wider than
/// that side cannot be shown as one texture (egui refuses it): a sentence instead.
fn bands(rendered: crate::render::Rendered, side: usize) -> Result<Bands, String> {
    let width = rendered.width_px as usize;
    if width > side {
        return Err(format!(
            "This message is {width} px wide, wider than this screen's graphics can draw ({side} px). \
             Open in browser shows it whole."
        ));
    }
    let images = rendered
        .rgba
        .chunks(width * 4 * side)
        .map(|rows| {
            egui::ColorImage::from_rgba_unmultiplied([width, rows.len() / (width * 4)], rows)
        })
        .collect();
    Ok(Bands {
        viewport_px: rendered.viewport_px,
        width_px: rendered.width_px,
        height_px: rendered.height_px,
        blocked_images: rendered.blocked_images,
        cut: rendered.cut,
        images,
    })
}

#[derive(Default)]
pub struct RenderedView {
    pub width: PreviewWidth,
    pub remote_images: bool,
    worker: Option<RenderWorker>,
    arrived: Option<Receiver<Arrived>>,
    /// The generation of the render this view waits for; older answers are dropped.
    generation: u64,
    /// What the last request drew (recipient, HTML, width, images), to ask again only on change.
    requested: Option<u64>,
    state: Option<State>,
    /// The image in horizontal bands, each within the GPU's largest texture side.
    textures: Vec<egui::TextureHandle>,
    /// What "Open in browser" did, in a sentence.
    pub browser_status: Option<Result<String, String>>,
}

fn key(preview: &PreviewData, html: &str, width: PreviewWidth, remote_images: bool) -> u64 {
    let mut hasher = DefaultHasher::new();
    (preview.index, &preview.email, html, width, remote_images).hash(&mut hasher);
    preview.inline_images.len().hash(&mut hasher);
    hasher.finish()
}

fn inline(preview: &PreviewData) -> Vec<InlineImage> {
    preview
        .inline_images
        .iter()
        .map(|(content_id, bytes)| InlineImage {
            content_id: content_id.clone(),
            bytes: bytes.clone(),
        })
        .collect()
}

impl RenderedView {
    /// True while a render this view waits for is in flight.
    pub fn is_rendering(&self) -> bool {
        matches!(self.state, Some(State::Rendering))
    }

    /// How many texture bands the shown render is drawn with.
    pub fn bands(&self) -> usize {
        self.textures.len()
    }

    fn worker(&mut self, ctx: &egui::Context) -> Option<&RenderWorker> {
        if self.worker.is_none() {
            let (tx, rx) = channel();
            let repaint = ctx.clone();
            // A newsletter is often taller than a texture may be (2,048 px on some GPUs).
            let side = ctx.input(|input| input.max_texture_side).max(256);
            let deliver = move |done: Done| {
                let arrived = match done {
                    Done::Rendered {
                        generation,
                        result,
                        elapsed_ms,
                    } => Arrived::Rendered {
                        generation,
                        result: result.and_then(|rendered| bands(rendered, side)),
                        elapsed_ms,
                    },
                    Done::Opened(result) => Arrived::Opened(result),
                };
                if tx.send(arrived).is_ok() {
                    repaint.request_repaint();
                }
            };
            match RenderWorker::spawn(deliver) {
                Ok(worker) => {
                    self.worker = Some(worker);
                    self.arrived = Some(rx);
                }
                Err(error) => {
                    self.state = Some(State::Failed(format!(
                        "the renderer could not start ({error})"
                    )));
                    return None;
                }
            }
        }
        self.worker.as_ref()
    }

    /// Takes the worker's answers: the awaited render becomes textures, stale ones are dropped.
    fn poll(&mut self, ctx: &egui::Context) {
        let Some(arrived) = &self.arrived else {
            return;
        };
        let answers: Vec<Arrived> = arrived.try_iter().collect();
        for answer in answers {
            match answer {
                Arrived::Rendered {
                    generation,
                    result,
                    elapsed_ms,
                } if generation == self.generation => match result {
                    Ok(bands) => {
                        self.textures = bands
                            .images
                            .into_iter()
                            .enumerate()
                            .map(|(band, image)| {
                                ctx.load_texture(
                                    format!("rendered-preview-{band}"),
                                    image,
                                    egui::TextureOptions::LINEAR,
                                )
                            })
                            .collect();
                        self.state = Some(State::Ready {
                            viewport_px: bands.viewport_px,
                            width_px: bands.width_px,
                            height_px: bands.height_px,
                            blocked_images: bands.blocked_images,
                            cut: bands.cut,
                            elapsed_ms,
                        });
                    }
                    Err(error) => {
                        self.textures.clear();
                        self.state = Some(State::Failed(error));
                    }
                },
                Arrived::Rendered { .. } => {}
                Arrived::Opened(result) => {
                    self.browser_status = Some(
                        result.map(|path| format!("Opened {} in your browser", path.display())),
                    );
                }
            }
        }
    }

    // Long because it draws the Rendered view top to bottom (the bar of widths and image
    // choices, the status, the bands of texture); egui code reads best in the order it draws.
    pub fn ui(&mut self, ui: &mut egui::Ui, preview: &PreviewData) {
        self.poll(ui.ctx());
        let Some(html) = preview.html.as_deref() else {
            ui.weak("This message has no HTML part: the Text view shows all of it.");
            return;
        };
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.width, PreviewWidth::Desktop, "Desktop")
                .on_hover_text(format!(
                    "{DESKTOP_WIDTH_PX} px, a desktop client's reading pane"
                ));
            ui.selectable_value(&mut self.width, PreviewWidth::Phone, "Phone")
                .on_hover_text(format!("{PHONE_WIDTH_PX} px, a phone held upright"));
            ui.separator();
            ui.checkbox(&mut self.remote_images, "Load remote images")
                .on_hover_text(
                    "Off, as most mail clients start: images from other servers are not fetched \
                 (opening them tells the sender you read the message). Inline images always show.",
                );
            ui.separator();
            if ui.button("Open in browser").clicked() {
                let (html, images) = (html.to_string(), inline(preview));
                if let Some(worker) = self.worker(ui.ctx()) {
                    worker.open_in_browser(html, images);
                }
            }
        });
        match &self.browser_status {
            Some(Ok(text)) => {
                ui.weak(text);
            }
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {}
        }
        let wanted = key(preview, html, self.width, self.remote_images);
        if self.requested != Some(wanted) {
            let request = RenderRequest {
                html: html.to_string(),
                width_px: self.width.px(),
                inline: inline(preview),
                remote_images: self.remote_images,
            };
            self.generation += 1;
            let generation = self.generation;
            if let Some(worker) = self.worker(ui.ctx()) {
                worker.render(generation, request);
                self.requested = Some(wanted);
                self.state = Some(State::Rendering);
                self.textures.clear();
            }
        }
        match self.state.as_ref().unwrap_or(&State::Idle) {
            State::Idle => {}
            State::Rendering => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak("Rendering…");
                });
            }
            State::Failed(error) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The rendered view could not be drawn: {error}."),
                );
                ui.weak("The Text and HTML source views still show the message.");
            }
            State::Ready {
                viewport_px,
                width_px,
                height_px,
                blocked_images,
                cut,
                elapsed_ms,
            } => {
                let mut line =
                    format!("{viewport_px} px wide, {height_px} px tall, drawn in {elapsed_ms} ms");
                if width_px > viewport_px {
                    line.push_str(&format!(
                        " · the message is {width_px} px wide, wider than this screen: \
                         phones scroll it sideways or shrink it"
                    ));
                }
                if *blocked_images > 0 {
                    line.push_str(&format!(
                        " · {blocked_images} remote image{} not loaded",
                        if *blocked_images == 1 { "" } else { "s" }
                    ));
                }
                if *cut {
                    line.push_str(" · cut at the first 16,000 px");
                }
                ui.weak(line);
                egui::ScrollArea::both()
                    .id_salt("rendered_preview")
                    .show(ui, |ui| {
                        ui.spacing_mut().item_spacing.y = 0.0;
                        for texture in &self.textures {
                            let size = texture.size_vec2();
                            ui.add(
                                egui::Image::new((texture.id(), size))
                                    .fit_to_exact_size(size)
                                    .alt_text("The message as rendered"),
                            );
                        }
                    });
            }
        }
    }
}
