//! litehtml's pixel-buffer container with one correction: an image is drawn at the size its
//! box was laid out at (`<img width height>`, `max-width: 100%`, retina images shown at half
//! size), not at its file's own size, which is all the stock container does. Every other call
//! goes straight to the stock container.

use std::collections::{HashMap, HashSet};

use litehtml::pixbuf::PixbufContainer;
use litehtml::{
    BackgroundLayer, BorderRadiuses, Borders, Color, ConicGradient, DocumentContainer, DrawContext,
    FontDescription, FontHandle, FontMetrics, LinearGradient, ListMarker, MediaFeatures, Position,
    RadialGradient, Size, TextTransform,
};

pub(super) struct ScalingContainer {
    pub(super) inner: PixbufContainer,
    originals: HashMap<String, image::RgbaImage>,
    scaled: HashSet<String>,
}

impl ScalingContainer {
    pub(super) fn new(width: u32, height: u32) -> Self {
        ScalingContainer {
            inner: PixbufContainer::new(width, height),
            originals: HashMap::new(),
            scaled: HashSet::new(),
        }
    }

    pub(super) fn load_image_data(&mut self, url: &str, bytes: &[u8]) {
        if let Ok(decoded) = image::load_from_memory(bytes) {
            self.originals.insert(url.to_string(), decoded.to_rgba8());
            self.inner.load_image_data(url, bytes);
        }
    }

    /// The name of `url` drawn at `width` × `height`, made (once) if it differs from the file.
    fn sized(&mut self, url: &str, width: u32, height: u32) -> Option<String> {
        let original = self.originals.get(url)?;
        if (original.width(), original.height()) == (width, height) || width == 0 || height == 0 {
            return None;
        }
        let name = format!("{url}#herald-{width}x{height}");
        if !self.scaled.contains(&name) {
            let resized = image::imageops::resize(
                original,
                width,
                height,
                image::imageops::FilterType::Triangle,
            );
            let png = super::encode_png(width, height, resized.as_raw()).ok()?;
            self.inner.load_image_data(&name, &png);
            self.scaled.insert(name.clone());
        }
        Some(name)
    }
}

impl DocumentContainer for ScalingContainer {
    fn create_font(&mut self, descr: &FontDescription) -> (FontHandle, FontMetrics) {
        self.inner.create_font(descr)
    }
    fn delete_font(&mut self, font: FontHandle) {
        self.inner.delete_font(font)
    }
    fn text_width(&self, text: &str, font: FontHandle) -> f32 {
        self.inner.text_width(text, font)
    }
    fn draw_text(
        &mut self,
        hdc: DrawContext,
        text: &str,
        font: FontHandle,
        color: Color,
        pos: Position,
    ) {
        self.inner.draw_text(hdc, text, font, color, pos)
    }
    fn draw_list_marker(&mut self, hdc: DrawContext, marker: &ListMarker) {
        self.inner.draw_list_marker(hdc, marker)
    }
    fn load_image(&mut self, src: &str, baseurl: &str, redraw_on_ready: bool) {
        self.inner.load_image(src, baseurl, redraw_on_ready)
    }
    fn get_image_size(&self, src: &str, baseurl: &str) -> Size {
        self.inner.get_image_size(src, baseurl)
    }
    fn draw_image(&mut self, hdc: DrawContext, layer: &BackgroundLayer, url: &str, base_url: &str) {
        let target = layer.origin_box();
        let (width, height) = (target.width.round() as u32, target.height.round() as u32);
        match self.sized(url, width, height) {
            Some(name) => self.inner.draw_image(hdc, layer, &name, base_url),
            None => self.inner.draw_image(hdc, layer, url, base_url),
        }
    }
    fn draw_solid_fill(&mut self, hdc: DrawContext, layer: &BackgroundLayer, color: Color) {
        self.inner.draw_solid_fill(hdc, layer, color)
    }
    fn draw_linear_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &LinearGradient,
    ) {
        self.inner.draw_linear_gradient(hdc, layer, gradient)
    }
    fn draw_radial_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &RadialGradient,
    ) {
        self.inner.draw_radial_gradient(hdc, layer, gradient)
    }
    fn draw_conic_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &ConicGradient,
    ) {
        self.inner.draw_conic_gradient(hdc, layer, gradient)
    }
    fn draw_borders(
        &mut self,
        hdc: DrawContext,
        borders: &Borders,
        draw_pos: Position,
        root: bool,
    ) {
        self.inner.draw_borders(hdc, borders, draw_pos, root)
    }
    fn set_caption(&mut self, caption: &str) {
        self.inner.set_caption(caption)
    }
    fn set_base_url(&mut self, base_url: &str) {
        self.inner.set_base_url(base_url)
    }
    fn on_anchor_click(&mut self, url: &str) {
        self.inner.on_anchor_click(url)
    }
    fn set_cursor(&mut self, cursor: &str) {
        self.inner.set_cursor(cursor)
    }
    fn set_clip(&mut self, pos: Position, radius: BorderRadiuses) {
        self.inner.set_clip(pos, radius)
    }
    fn del_clip(&mut self) {
        self.inner.del_clip()
    }
    fn get_viewport(&self) -> Position {
        self.inner.get_viewport()
    }
    fn get_media_features(&self) -> MediaFeatures {
        self.inner.get_media_features()
    }
    fn transform_text(&self, text: &str, tt: TextTransform) -> String {
        self.inner.transform_text(text, tt)
    }
}
