//! The Compose preview's "Rendered" view: the chosen recipient's HTML as a mail client shows it,
//! at desktop or phone width, remote images off unless asked, and "Open in browser". Drawing
//! happens on the render worker's thread (`crate::render::worker`); this view only asks for a
//! render when what it shows changes, uploads the finished image as a texture, and drops
//! answers for anything it no longer shows.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::engine::service::PreviewData;
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
        width_px: u32,
        height_px: u32,
        blocked_images: usize,
        cut: bool,
        elapsed_ms: u64,
    },
    Failed(String),
}

#[derive(Default)]
pub struct RenderedView {
    pub width: PreviewWidth,
    pub remote_images: bool,
    worker: Option<RenderWorker>,
    /// The generation of the render this view waits for; older answers are dropped.
    generation: u64,
    /// What the last request drew (recipient, HTML, width, images), to ask again only on change.
    requested: Option<u64>,
    state: Option<State>,
    texture: Option<egui::TextureHandle>,
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

    fn worker(&mut self, ctx: &egui::Context) -> Option<&RenderWorker> {
        if self.worker.is_none() {
            let ctx = ctx.clone();
            match RenderWorker::spawn(move || ctx.request_repaint()) {
                Ok(worker) => self.worker = Some(worker),
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

    /// Takes the worker's answers: the awaited render becomes a texture, stale ones are dropped.
    fn poll(&mut self, ctx: &egui::Context) {
        let Some(worker) = &self.worker else {
            return;
        };
        let mut answers = Vec::new();
        while let Some(done) = worker.try_recv() {
            answers.push(done);
        }
        for done in answers {
            match done {
                Done::Rendered {
                    generation,
                    result,
                    elapsed_ms,
                } if generation == self.generation => match result {
                    Ok(rendered) => {
                        let image = egui::ColorImage::from_rgba_unmultiplied(
                            [rendered.width_px as usize, rendered.height_px as usize],
                            &rendered.rgba,
                        );
                        self.texture = Some(ctx.load_texture(
                            "rendered-preview",
                            image,
                            egui::TextureOptions::LINEAR,
                        ));
                        self.state = Some(State::Ready {
                            width_px: rendered.width_px,
                            height_px: rendered.height_px,
                            blocked_images: rendered.blocked_images,
                            cut: rendered.cut,
                            elapsed_ms,
                        });
                    }
                    Err(error) => {
                        self.texture = None;
                        self.state = Some(State::Failed(error));
                    }
                },
                Done::Rendered { .. } => {}
                Done::Opened(result) => {
                    self.browser_status = Some(
                        result.map(|path| format!("Opened {} in your browser", path.display())),
                    );
                }
            }
        }
    }

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
                self.texture = None;
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
                width_px,
                height_px,
                blocked_images,
                cut,
                elapsed_ms,
            } => {
                let mut line = format!("{width_px} × {height_px} px, drawn in {elapsed_ms} ms");
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
                if let Some(texture) = &self.texture {
                    let size = egui::vec2(*width_px as f32, *height_px as f32);
                    egui::ScrollArea::both()
                        .id_salt("rendered_preview")
                        .show(ui, |ui| {
                            ui.add(
                                egui::Image::new((texture.id(), size))
                                    .fit_to_exact_size(size)
                                    .alt_text("The message as rendered"),
                            );
                        });
                }
            }
        }
    }
}
