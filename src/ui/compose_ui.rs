//! The Compose view: sender, subject, HTML and text templates (highlighted, with line numbers,
//! a wrap toggle and find) with an "insert field" menu, attachments, unsubscribe and DKIM
//! settings, and a preview of the message as one recipient will get it. Owns its own state
//! (the preview, the test send, the editors' options); edits the document it is handed and
//! returns actions; never reads files itself.

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use crate::app::service::PreviewData;
use crate::campaign::{RawCampaign, RawMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewTab {
    Rendered,
    Text,
    Html,
    Headers,
}

/// One template editor's options: wrap long lines, and what to find in it.
#[derive(Debug, Default)]
struct EditorOptions {
    wrap: bool,
    find: String,
    /// Which match "Next" went to last.
    found_at: usize,
}

pub struct ComposeView {
    pub preview_index: u64,
    pub preview: Option<Result<PreviewData, String>>,
    pub preview_tab: PreviewTab,
    /// The "Rendered" tab: the message drawn as a mail client shows it.
    pub rendered: super::rendered_ui::RenderedView,
    pub test_to: String,
    pub test_result: Option<Result<String, String>>,
    /// What the last "Open HTML file…" did (an error also when images were not found).
    pub html_loaded: Option<Result<String, String>>,
    /// A newsletter came in (Open HTML file…, or a whole document pasted) while the campaign
    /// has a Text body of its own, which the new HTML does not change (issue #20): said under
    /// the HTML body until the Text body is cleared or the campaign changes.
    pub text_kept: bool,
    attachment_path: String,
    /// An HTML file's path typed where no file chooser could open.
    html_path: String,
    html_editor: EditorOptions,
    text_editor: EditorOptions,
    /// What "Insert field" writes for a recipient whose value is empty ("there" in "Hello
    /// there"); empty: no fallback.
    fallback: String,
}

impl Default for ComposeView {
    fn default() -> Self {
        ComposeView {
            preview_index: 0,
            preview: None,
            preview_tab: PreviewTab::Text,
            rendered: Default::default(),
            test_to: String::new(),
            test_result: None,
            html_loaded: None,
            text_kept: false,
            attachment_path: String::new(),
            html_path: String::new(),
            html_editor: EditorOptions::default(),
            text_editor: EditorOptions::default(),
            fallback: String::new(),
        }
    }
}

/// The warning shown when a new newsletter leaves the campaign's own Text body as it was.
pub const TEXT_KEPT: &str = "The Text body is still your own text, not the new newsletter: \
     clear it to send text derived from the HTML.";

/// Whether this frame pasted a whole HTML document (a newsletter copied from a design tool or
/// a browser's source view) rather than a few words.
fn pasted_a_newsletter(ui: &egui::Ui) -> bool {
    ui.input(|input| {
        input.events.iter().any(|event| match event {
            egui::Event::Paste(pasted) => {
                let lower = pasted.to_ascii_lowercase();
                lower.contains("<html") || lower.contains("<body")
            }
            _ => false,
        })
    })
}

/// A labelled one-line text field bound to an optional campaign value.
fn field_ui(ui: &mut egui::Ui, label: &str, hint: &str, value: &mut Option<String>) {
    ui.horizontal(|ui| {
        text_field_ui(ui, label, hint, value, f32::INFINITY);
    });
}

fn text_field_ui(
    ui: &mut egui::Ui,
    label: &str,
    hint: &str,
    value: &mut Option<String>,
    width: f32,
) {
    let label = ui.add_sized([90.0, 20.0], egui::Label::new(label));
    let mut text = value.clone().unwrap_or_default();
    let response = ui
        .add(
            egui::TextEdit::singleline(&mut text)
                .hint_text(hint)
                .desired_width(width),
        )
        .labelled_by(label.id);
    if response.changed() {
        *value = Some(text).filter(|text| !text.is_empty());
    }
}

/// "Insert field": the list's columns (and `email`), each appended to `target` as `{{ name }}`,
/// or with the fallback typed at the top of the menu as `{{ or(name, "there") }}` (issue #20).
fn insert_field_ui(
    ui: &mut egui::Ui,
    label: &str,
    columns: &[String],
    fallback: &mut String,
    mut insert: impl FnMut(&str),
) {
    ui.menu_button(label, |ui| {
        let label = ui.label("If a recipient's value is empty, write");
        ui.add(
            egui::TextEdit::singleline(fallback)
                .hint_text("nothing (or e.g. there)")
                .desired_width(180.0),
        )
        .labelled_by(label.id);
        ui.separator();
        for name in std::iter::once("email").chain(columns.iter().map(String::as_str)) {
            if ui.button(name).clicked() {
                insert(&crate::app::field_expression(name, fallback));
                ui.close();
            }
        }
        if columns.is_empty() {
            ui.label("Import a list to see its columns");
        }
    });
}

impl ComposeView {
    /// A campaign was opened or started afresh: its preview and test are not this one's.
    pub fn reset(&mut self) {
        self.preview = None;
        self.test_result = None;
        self.html_loaded = None;
        self.text_kept = false;
        self.preview_index = 0;
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        ui.columns(2, |halves| {
            let [left, right] = halves else {
                return;
            };
            egui::ScrollArea::vertical()
                .id_salt("compose_form")
                .show(left, |ui| self.editor_ui(ui, ctx, &mut actions));
            self.preview_ui(right, &mut actions);
        });
        actions
    }

    fn editor_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut ViewContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.heading("Message");
        headers_ui(
            ui,
            &mut ctx.doc.raw.message,
            ctx.columns,
            &mut self.fallback,
        );
        ui.add_space(6.0);
        self.bodies_ui(ui, ctx, actions);
        ui.add_space(6.0);
        self.attachments_ui(ui, ctx, actions);
        ui.add_space(6.0);
        dkim_ui(ui, &mut ctx.doc.raw);
    }

    /// The HTML body (with "Insert field" from the list's columns and "Open HTML file…" for a
    /// newsletter made elsewhere) and the text body.
    fn bodies_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut ViewContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        let columns = ctx.columns;
        let html_label = ui
            .horizontal(|ui| {
                let label = ui.strong("HTML body");
                insert_field_ui(ui, "Insert field", columns, &mut self.fallback, |field| {
                    ctx.doc.html.push_str(field);
                });
                if ui
                    .button("Open HTML file…")
                    .on_hover_text(
                        "Load a newsletter exported from a design tool; the images beside it \
                         are copied into the campaign folder and sent inline",
                    )
                    .clicked()
                {
                    actions.push(Action::Browse(Purpose::HtmlFile));
                }
                label.id
            })
            .inner;
        if ctx.dialog_failed == Some(Purpose::HtmlFile) {
            ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
            ui.horizontal(|ui| {
                let label = ui.label("HTML file");
                ui.add(
                    egui::TextEdit::singleline(&mut self.html_path)
                        .hint_text("newsletter/index.html")
                        .desired_width(240.0),
                )
                .labelled_by(label.id);
                if ui.button("Open").clicked() && !self.html_path.trim().is_empty() {
                    actions.push(Action::LoadHtml(std::path::PathBuf::from(
                        self.html_path.trim(),
                    )));
                }
            });
        }
        match &self.html_loaded {
            Some(Ok(summary)) => {
                ui.colored_label(super::theme::state_color(crate::app::State::Sent), summary);
            }
            Some(Err(problem)) => {
                ui.colored_label(ui.visuals().warn_fg_color, problem);
            }
            None => {}
        }
        self.text_kept_ui(ui, &mut ctx.doc.text);
        template_editor_ui(
            ui,
            "html_editor",
            html_label,
            &mut ctx.doc.html,
            14,
            &mut self.html_editor,
        );
        let html_edit = ui.make_persistent_id(("html_editor", "edit"));
        if ui.memory(|memory| memory.has_focus(html_edit))
            && pasted_a_newsletter(ui)
            && !ctx.doc.text.trim().is_empty()
        {
            self.text_kept = true;
        }
        ui.add_space(6.0);
        let text_label = ui
            .horizontal(|ui| {
                let label = ui.strong("Text body");
                ui.weak("(left empty, it is derived from the HTML)");
                label.id
            })
            .inner;
        template_editor_ui(
            ui,
            "text_editor",
            text_label,
            &mut ctx.doc.text,
            8,
            &mut self.text_editor,
        );
    }

    /// Says plainly that the Text body is the marketer's own words, not the newsletter just
    /// brought in, and offers to clear it (an empty Text body is derived from the HTML).
    fn text_kept_ui(&mut self, ui: &mut egui::Ui, text: &mut String) {
        if !self.text_kept || text.trim().is_empty() {
            self.text_kept = false;
            return;
        }
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(ui.visuals().warn_fg_color, TEXT_KEPT);
            if ui.button("Clear the Text body").clicked() {
                text.clear();
                self.text_kept = false;
            }
        });
    }

    /// The attachments: each with Remove, and a file typed or chosen to add.
    fn attachments_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut ViewContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.strong("Attachments");
        let attachments = &mut ctx.doc.raw.message.attachments;
        let mut remove = None;
        for (index, name) in attachments.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.label(name.clone());
                if ui.small_button("Remove").clicked() {
                    remove = Some(index);
                }
            });
        }
        if let Some(index) = remove {
            attachments.remove(index);
        }
        if attachments.is_empty() {
            ui.weak("No attachments. Most newsletters need none: link to files instead.");
        }
        let inline = &ctx.doc.raw.message.inline;
        if !inline.is_empty() {
            ui.weak(format!(
                "Inline images (shown in the HTML as cid:NAME): {}",
                inline.join(", ")
            ));
        }
        ui.horizontal(|ui| {
            let label = ui.label("Attach file");
            ui.add(
                egui::TextEdit::singleline(&mut self.attachment_path)
                    .hint_text("prices.pdf")
                    .desired_width(200.0),
            )
            .labelled_by(label.id);
            if ui.button("Add").clicked() && !self.attachment_path.trim().is_empty() {
                attachments.push(self.attachment_path.trim().to_string());
                self.attachment_path.clear();
            }
            if ui.button("Add attachment…").clicked() {
                actions.push(Action::Browse(Purpose::Attachment));
            }
        });
        if ctx.dialog_failed == Some(Purpose::Attachment) {
            ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
        }
    }

    fn preview_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.heading("Preview");
        ui.horizontal(|ui| {
            let label = ui.label("Recipient #");
            let mut number = self.preview_index + 1;
            ui.add(egui::DragValue::new(&mut number).range(1..=u64::MAX))
                .labelled_by(label.id);
            self.preview_index = number.saturating_sub(1);
            if ui.button("Preview").on_hover_text("Ctrl+P").clicked() {
                actions.push(Action::Preview(self.preview_index));
            }
            if ui.button("Previous").clicked() && self.preview_index > 0 {
                actions.push(Action::Preview(self.preview_index - 1));
            }
            if ui.button("Next").clicked() {
                actions.push(Action::Preview(self.preview_index + 1));
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Send test to");
            ui.add(
                egui::TextEdit::singleline(&mut self.test_to)
                    .hint_text("you@example.com")
                    .desired_width(200.0),
            )
            .labelled_by(label.id);
            if ui.button("Send test").clicked() && !self.test_to.trim().is_empty() {
                actions.push(Action::TestSend(self.test_to.trim().to_string()));
            }
        });
        match &self.test_result {
            Some(Ok(text)) => {
                ui.label(text);
            }
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {}
        }
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.preview_tab, PreviewTab::Rendered, "Rendered");
            ui.selectable_value(&mut self.preview_tab, PreviewTab::Text, "Text");
            ui.selectable_value(&mut self.preview_tab, PreviewTab::Html, "HTML source");
            ui.selectable_value(&mut self.preview_tab, PreviewTab::Headers, "Headers");
        });
        ui.separator();
        match &self.preview {
            None => {
                ui.weak(
                    "Press Preview (Ctrl+P) to see the message as a recipient of the list will \
                     get it.",
                );
            }
            Some(Err(error)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    "The message cannot be rendered:",
                );
                ui.label(egui::RichText::new(error).monospace());
            }
            Some(Ok(preview)) => {
                if preview.sample {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        "Sample recipient: no list is imported yet, so each field shows its \
                         name in brackets.",
                    );
                }
                ui.label(format!(
                    "To {} · {} · {:.1} KB",
                    preview.email,
                    preview.subject,
                    preview.size_bytes as f64 / 1024.0
                ));
                let body = match self.preview_tab {
                    PreviewTab::Rendered => {
                        self.rendered.ui(ui, preview);
                        return;
                    }
                    PreviewTab::Text => preview.text.clone(),
                    PreviewTab::Html => preview
                        .html
                        .clone()
                        .unwrap_or_else(|| "(no HTML part)".into()),
                    PreviewTab::Headers => preview.headers.clone(),
                };
                egui::ScrollArea::vertical()
                    .id_salt("preview_body")
                    .show(ui, |ui| {
                        // A left-aligned layout: in the pane's justified one, egui spreads the
                        // words of every wrapped line across the width.
                        ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
                            ui.add(egui::Label::new(egui::RichText::new(body).monospace()).wrap());
                        });
                    });
            }
        }
    }
}

/// From, Reply-To, Subject (with its own "Insert field", issue #20) and the unsubscribe link.
fn headers_ui(
    ui: &mut egui::Ui,
    message: &mut RawMessage,
    columns: &[String],
    fallback: &mut String,
) {
    field_ui(
        ui,
        "From",
        "Acme News <news@acme.example>",
        &mut message.from,
    );
    field_ui(
        ui,
        "Reply-To",
        "help@acme.example (optional)",
        &mut message.reply_to,
    );
    ui.horizontal(|ui| {
        text_field_ui(
            ui,
            "Subject",
            "{{ first_name }}, our November picks",
            &mut message.subject,
            // Room for the label before and the "Insert field" button after.
            (ui.available_width() - 220.0).max(120.0),
        );
        insert_field_ui(ui, "Insert field", columns, fallback, |field| {
            message.subject.get_or_insert_default().push_str(field);
        });
    });
    field_ui(
        ui,
        "Unsubscribe",
        "empty: the signed link of [unsubscribe] url",
        &mut message.unsubscribe,
    );
}

/// The DKIM key's domain, selector and file; all three empty means no signing.
fn dkim_ui(ui: &mut egui::Ui, raw: &mut RawCampaign) {
    ui.collapsing("DKIM signing", |ui| {
        let dkim = raw.dkim.get_or_insert_with(Default::default);
        field_ui(ui, "Domain", "acme.example", &mut dkim.domain);
        field_ui(ui, "Selector", "s1", &mut dkim.selector);
        field_ui(ui, "Private key", "dkim.pem", &mut dkim.private_key);
        if dkim.domain.is_none() && dkim.selector.is_none() && dkim.private_key.is_none() {
            raw.dkim = None;
        }
    });
}

/// Where `needle` occurs in `text`, case-insensitively, as char ranges (what a text cursor
/// counts in).
pub fn find_matches(text: &str, needle: &str) -> Vec<(usize, usize)> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    if needle.is_empty() {
        return Vec::new();
    }
    let hay: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Lower-casing can change the number of chars (rarely: 'İ'); then positions are not
    // the text's, and find says nothing rather than select the wrong stretch.
    if hay.len() != text.chars().count() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        if hay[at..at + needle.len()] == needle[..] {
            found.push((at, at + needle.len()));
            at += needle.len();
        } else {
            at += 1;
        }
    }
    found
}

/// Colours for HTML tags, `{{ }}` expressions and comments: enough to see the structure of a
/// template at a glance, without a grammar engine.
pub fn highlight(
    text: &str,
    font: egui::FontId,
    plain: egui::Color32,
    dark: bool,
) -> egui::text::LayoutJob {
    let (tag, expression, comment) = if dark {
        (
            egui::Color32::from_rgb(110, 170, 240),
            egui::Color32::from_rgb(230, 170, 70),
            egui::Color32::from_gray(120),
        )
    } else {
        (
            egui::Color32::from_rgb(30, 90, 180),
            egui::Color32::from_rgb(170, 90, 0),
            egui::Color32::from_gray(130),
        )
    };
    let mut job = egui::text::LayoutJob::default();
    let mut rest = text;
    while !rest.is_empty() {
        let next = [rest.find("{{"), rest.find("<!--"), rest.find('<')]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let (before, from) = rest.split_at(next);
        append(&mut job, before, &font, plain);
        if from.is_empty() {
            break;
        }
        let (end_marker, color) = if from.starts_with("{{") {
            ("}}", expression)
        } else if from.starts_with("<!--") {
            ("-->", comment)
        } else {
            (">", tag)
        };
        let end = from
            .find(end_marker)
            .map(|at| at + end_marker.len())
            .unwrap_or(from.len());
        let (span, after) = from.split_at(end);
        append(&mut job, span, &font, color);
        rest = after;
    }
    job
}

fn append(job: &mut egui::text::LayoutJob, text: &str, font: &egui::FontId, color: egui::Color32) {
    if !text.is_empty() {
        job.append(text, 0.0, egui::TextFormat::simple(font.clone(), color));
    }
}

/// A monospace template editor: highlighted, with line numbers in a gutter (so "line 12" in a
/// template error can be found) unless long lines are wrapped, and a find box whose "Next"
/// selects the following match.
fn template_editor_ui(
    ui: &mut egui::Ui,
    id: &str,
    label: egui::Id,
    text: &mut String,
    rows: usize,
    options: &mut EditorOptions,
) {
    let edit_id = ui.make_persistent_id((id, "edit"));
    ui.horizontal(|ui| {
        ui.checkbox(&mut options.wrap, "Wrap lines");
        let find_label = ui.label("Find");
        let response = ui
            .add(
                egui::TextEdit::singleline(&mut options.find)
                    .hint_text("text to find")
                    .desired_width(140.0),
            )
            .labelled_by(find_label.id);
        if response.changed() {
            options.found_at = 0;
        }
        let matches = find_matches(text, &options.find);
        let enter = response.lost_focus() && ui.input(|input| input.key_pressed(egui::Key::Enter));
        if !options.find.is_empty() {
            ui.weak(match matches.len() {
                0 => "no match".to_string(),
                1 => "1 match".to_string(),
                n => format!("{n} matches"),
            });
        }
        if (ui
            .add_enabled(!matches.is_empty(), egui::Button::new("Next"))
            .clicked()
            || enter)
            && let Some(&(start, end)) = matches.get(options.found_at % matches.len().max(1))
        {
            options.found_at += 1;
            if let Some(mut state) = egui::TextEdit::load_state(ui.ctx(), edit_id) {
                state
                    .cursor
                    .set_char_range(Some(egui::text::CCursorRange::two(
                        egui::text::CCursor::new(start),
                        egui::text::CCursor::new(end),
                    )));
                state.store(ui.ctx(), edit_id);
            }
            ui.ctx().memory_mut(|memory| memory.request_focus(edit_id));
        }
    });
    let lines = text.lines().count().max(1) + usize::from(text.ends_with('\n'));
    let wrap = options.wrap;
    let dark = ui.visuals().dark_mode;
    let scroll = if wrap {
        egui::ScrollArea::vertical()
    } else {
        egui::ScrollArea::both()
    };
    scroll
        .id_salt(id)
        .max_height(rows as f32 * 16.0 + 8.0)
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                if !wrap {
                    let numbers = (1..=lines)
                        .map(|n| format!("{n:>3}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    ui.add(
                        egui::Label::new(egui::RichText::new(numbers).monospace().weak())
                            .selectable(false),
                    );
                }
                let mut layouter = |ui: &egui::Ui, buffer: &dyn egui::TextBuffer, width: f32| {
                    let font = egui::TextStyle::Monospace.resolve(ui.style());
                    let mut job = highlight(buffer.as_str(), font, ui.visuals().text_color(), dark);
                    // Without wrapping each gutter number is one line of the text.
                    job.wrap.max_width = if wrap { width } else { f32::INFINITY };
                    ui.fonts_mut(|fonts| fonts.layout_job(job))
                };
                ui.add(
                    egui::TextEdit::multiline(text)
                        .id(edit_id)
                        .code_editor()
                        .desired_rows(rows)
                        .desired_width(f32::INFINITY)
                        .layouter(&mut layouter),
                )
                .labelled_by(label);
            });
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_counts_in_chars_and_ignores_case() {
        let check = |text: &str, needle: &str, expected: &[(usize, usize)]| {
            assert_eq!(
                find_matches(text, needle),
                expected,
                "{text:?} / {needle:?}"
            );
        };
        check("Hello {{ first_name }}", "first", &[(9, 14)]);
        check("aAa", "a", &[(0, 1), (1, 2), (2, 3)]);
        check("é<p>É</p>", "é", &[(0, 1), (4, 5)]);
        check("abc", "", &[]);
        check("abc", "abcd", &[]);
        check("aaaa", "aa", &[(0, 2), (2, 4)]);
    }

    #[test]
    fn highlighting_keeps_every_byte_and_colours_the_parts() {
        let text = "<p class=\"x\">Hi {{ first_name }}</p><!-- note --> {{ unclosed";
        let job = highlight(
            text,
            egui::FontId::monospace(12.0),
            egui::Color32::WHITE,
            true,
        );
        assert_eq!(job.text, text);
        let pieces: Vec<&str> = job
            .sections
            .iter()
            .map(|section| &job.text[section.byte_range.start.0..section.byte_range.end.0])
            .collect();
        assert_eq!(
            pieces,
            [
                "<p class=\"x\">",
                "Hi ",
                "{{ first_name }}",
                "</p>",
                "<!-- note -->",
                " ",
                "{{ unclosed"
            ]
        );
    }
}
