//! The Compose tab: sender, subject, HTML and text templates with an "insert field" menu,
//! attachments, unsubscribe and DKIM settings, and a preview of the message as one recipient
//! will get it. Draws from the app's state and returns actions; never reads files itself.

use super::app::{Action, HeraldApp, PreviewTab};

/// A labelled one-line text field bound to an optional campaign value.
fn field_ui(ui: &mut egui::Ui, label: &str, hint: &str, value: &mut Option<String>) {
    ui.horizontal(|ui| {
        let label = ui.add_sized([90.0, 20.0], egui::Label::new(label));
        let mut text = value.clone().unwrap_or_default();
        let response = ui
            .add(
                egui::TextEdit::singleline(&mut text)
                    .hint_text(hint)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        if response.changed() {
            *value = Some(text).filter(|text| !text.is_empty());
        }
    });
}

pub fn compose_ui(app: &mut HeraldApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let columns = app
        .peek
        .as_ref()
        .and_then(|peek| peek.as_ref().ok())
        .map(|peek| peek.columns.clone())
        .unwrap_or_default();
    ui.columns(2, |halves| {
        let [left, right] = halves else {
            return;
        };
        egui::ScrollArea::vertical()
            .id_salt("compose_form")
            .show(left, |ui| editor_ui(app, ui, &columns));
        preview_ui(app, right, actions);
    });
}

fn editor_ui(app: &mut HeraldApp, ui: &mut egui::Ui, columns: &[String]) {
    let message = &mut app.doc.raw.message;
    ui.heading("Message");
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
    field_ui(
        ui,
        "Subject",
        "{{ first_name }}, our November picks",
        &mut message.subject,
    );
    field_ui(
        ui,
        "Unsubscribe",
        "https://acme.example/u?e={{ url(email) }}",
        &mut message.unsubscribe,
    );
    ui.add_space(6.0);
    let html_label = ui
        .horizontal(|ui| {
            let label = ui.strong("HTML body");
            ui.menu_button("Insert field", |ui| {
                for name in std::iter::once("email").chain(columns.iter().map(String::as_str)) {
                    if ui.button(name).clicked() {
                        app.doc.html.push_str(&format!("{{{{ {name} }}}}"));
                        ui.close();
                    }
                }
                if columns.is_empty() {
                    ui.label("Import a list to see its columns");
                }
            });
            label.id
        })
        .inner;
    editor_with_lines(ui, "html_editor", html_label, &mut app.doc.html, 14);
    ui.add_space(6.0);
    let text_label = ui
        .horizontal(|ui| {
            let label = ui.strong("Text body");
            ui.weak("(left empty, it is derived from the HTML)");
            label.id
        })
        .inner;
    editor_with_lines(ui, "text_editor", text_label, &mut app.doc.text, 8);
    ui.add_space(6.0);
    ui.strong("Attachments");
    let attachments = &mut app.doc.raw.message.attachments;
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
    ui.horizontal(|ui| {
        if ui.button("Add attachment…").clicked()
            && let Some(path) = rfd::FileDialog::new().pick_file()
        {
            attachments.push(path.to_string_lossy().into_owned());
        }
    });
    ui.add_space(6.0);
    ui.collapsing("DKIM signing", |ui| {
        let dkim = app.doc.raw.dkim.get_or_insert_with(Default::default);
        field_ui(ui, "Domain", "acme.example", &mut dkim.domain);
        field_ui(ui, "Selector", "s1", &mut dkim.selector);
        field_ui(ui, "Private key", "dkim.pem", &mut dkim.private_key);
        if dkim.domain.is_none() && dkim.selector.is_none() && dkim.private_key.is_none() {
            app.doc.raw.dkim = None;
        }
    });
}

/// A monospace editor with line numbers in a gutter, so template errors ("line 12") can be
/// found.
fn editor_with_lines(ui: &mut egui::Ui, id: &str, label: egui::Id, text: &mut String, rows: usize) {
    let lines = text.lines().count().max(1) + usize::from(text.ends_with('\n'));
    // No wrapping (a wide editor in a scroll area), so the gutter's numbers match the lines.
    egui::ScrollArea::both()
        .id_salt(id)
        .max_height(rows as f32 * 16.0 + 8.0)
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                let numbers = (1..=lines)
                    .map(|n| format!("{n:>3}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                ui.add(
                    egui::Label::new(egui::RichText::new(numbers).monospace().weak())
                        .selectable(false),
                );
                // Lay the text out without wrapping, so each gutter number is one line.
                let mut layouter = |ui: &egui::Ui, buffer: &dyn egui::TextBuffer, _wrap: f32| {
                    let font = egui::TextStyle::Monospace.resolve(ui.style());
                    let job = egui::text::LayoutJob::simple(
                        buffer.as_str().to_owned(),
                        font,
                        ui.visuals().text_color(),
                        f32::INFINITY,
                    );
                    ui.fonts_mut(|fonts| fonts.layout_job(job))
                };
                ui.add(
                    egui::TextEdit::multiline(text)
                        .code_editor()
                        .desired_rows(rows)
                        .desired_width(f32::INFINITY)
                        .layouter(&mut layouter),
                )
                .labelled_by(label);
            });
        });
}

fn preview_ui(app: &mut HeraldApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.heading("Preview");
    ui.horizontal(|ui| {
        let label = ui.label("Recipient #");
        let mut number = app.preview_index + 1;
        ui.add(egui::DragValue::new(&mut number).range(1..=u64::MAX))
            .labelled_by(label.id);
        app.preview_index = number.saturating_sub(1);
        if ui.button("Preview").clicked() {
            actions.push(Action::Preview(app.preview_index));
        }
        if ui.button("Previous").clicked() && app.preview_index > 0 {
            actions.push(Action::Preview(app.preview_index - 1));
        }
        if ui.button("Next").clicked() {
            actions.push(Action::Preview(app.preview_index + 1));
        }
    });
    ui.horizontal(|ui| {
        let label = ui.label("Send test to");
        ui.add(
            egui::TextEdit::singleline(&mut app.test_to)
                .hint_text("you@example.com")
                .desired_width(200.0),
        )
        .labelled_by(label.id);
        if ui.button("Send test").clicked() && !app.test_to.trim().is_empty() {
            actions.push(Action::TestSend(app.test_to.trim().to_string()));
        }
    });
    match &app.test_result {
        Some(Ok(text)) => {
            ui.label(text);
        }
        Some(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        None => {}
    }
    ui.horizontal(|ui| {
        ui.selectable_value(&mut app.preview_tab, PreviewTab::Text, "Text");
        ui.selectable_value(&mut app.preview_tab, PreviewTab::Html, "HTML source");
        ui.selectable_value(&mut app.preview_tab, PreviewTab::Headers, "Headers");
    });
    ui.separator();
    match &app.preview {
        None => {
            ui.weak("Press Preview to render the message for a recipient of the list.");
        }
        Some(Err(error)) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                "The message cannot be rendered:",
            );
            ui.label(egui::RichText::new(error).monospace());
        }
        Some(Ok(preview)) => {
            ui.label(format!(
                "To {} · {} · {:.1} KB",
                preview.email,
                preview.subject,
                preview.size_bytes as f64 / 1024.0
            ));
            let body = match app.preview_tab {
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
                    ui.add(egui::Label::new(egui::RichText::new(body).monospace()).wrap());
                });
        }
    }
}
