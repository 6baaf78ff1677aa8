//! litehtml's pixel-buffer container with one correction: an image is drawn at the size its
//! box was laid out at (`<img width height>`, `max-width: 100%`, retina images shown at half
//! size), not at its file's own size, which is all the stock container does. Every other call
//! goes straight to the stock container. The pixel buffer is made at the document's laid-out
//! height just before the first drawing call (the stock container builds clip masks the size of
//! its whole buffer, so a buffer much taller than the page costs on every clip and image).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

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
    /// The buffer size to draw into, set between layout and drawing.
    pub(super) draw_size: Rc<Cell<Option<(u32, u32)>>>,
}

impl ScalingContainer {
    pub(super) fn new(width: u32, height: u32) -> Self {
        ScalingContainer {
            inner: PixbufContainer::new(width, height),
            originals: HashMap::new(),
            scaled: HashSet::new(),
            draw_size: Rc::new(Cell::new(None)),
        }
    }

    /// Makes the buffer the asked size once drawing starts (layout is over by then).
    fn ready_to_draw(&mut self) {
        if let Some((width, height)) = self.draw_size.take()
            && (self.inner.width(), self.inner.height()) != (width, height)
        {
            self.inner.resize(width, height);
        }
    }

    pub(super) fn load_image_data(&mut self, url: &str, bytes: &[u8]) {
        if let Ok(decoded) = super::decode_bounded(bytes) {
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
        // A box the HTML made huge (an image 50,000 px square) would allocate gigabytes here:
        // beyond what the page can show, the image is left to litehtml as it is.
        if u64::from(width) * u64::from(height) > super::MAX_IMAGE_PIXELS {
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
        self.ready_to_draw();
        self.inner.draw_text(hdc, text, font, color, pos)
    }
    fn draw_list_marker(&mut self, hdc: DrawContext, marker: &ListMarker) {
        self.ready_to_draw();
        self.inner.draw_list_marker(hdc, marker)
    }
    fn load_image(&mut self, src: &str, baseurl: &str, redraw_on_ready: bool) {
        self.inner.load_image(src, baseurl, redraw_on_ready)
    }
    fn get_image_size(&self, src: &str, baseurl: &str) -> Size {
        self.inner.get_image_size(src, baseurl)
    }
    fn draw_image(&mut self, hdc: DrawContext, layer: &BackgroundLayer, url: &str, base_url: &str) {
        self.ready_to_draw();
        let target = layer.origin_box();
        let (width, height) = (target.width.round() as u32, target.height.round() as u32);
        match self.sized(url, width, height) {
            Some(name) => self.inner.draw_image(hdc, layer, &name, base_url),
            None => self.inner.draw_image(hdc, layer, url, base_url),
        }
    }
    fn draw_solid_fill(&mut self, hdc: DrawContext, layer: &BackgroundLayer, color: Color) {
        self.ready_to_draw();
        self.inner.draw_solid_fill(hdc, layer, color)
    }
    fn draw_linear_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &LinearGradient,
    ) {
        self.ready_to_draw();
        self.inner.draw_linear_gradient(hdc, layer, gradient)
    }
    fn draw_radial_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &RadialGradient,
    ) {
        self.ready_to_draw();
        self.inner.draw_radial_gradient(hdc, layer, gradient)
    }
    fn draw_conic_gradient(
        &mut self,
        hdc: DrawContext,
        layer: &BackgroundLayer,
        gradient: &ConicGradient,
    ) {
        self.ready_to_draw();
        self.inner.draw_conic_gradient(hdc, layer, gradient)
    }
    fn draw_borders(
        &mut self,
        hdc: DrawContext,
        borders: &Borders,
        draw_pos: Position,
        root: bool,
    ) {
        self.ready_to_draw();
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
        self.ready_to_draw();
        self.inner.set_clip(pos, radius)
    }
    fn del_clip(&mut self) {
        self.ready_to_draw();
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
