//! Templates: text with `{{ expr }}` parts, where `expr` is a rhai expression evaluated with the
//! recipient's fields as variables. `{{{ expr }}}` inserts the value as it is; in HTML templates
//! `{{ expr }}` escapes it. Owns rhai and its sandbox: no file, network or module access, and
//! limits on operations, call depth, string and collection sizes and time, so a runaway
//! expression fails fast with an error that names the template, line, column and recipient.
//! Compiles each expression once; rendering reuses the compiled ASTs for every recipient.
//! Also runs the campaign's personalization script (same sandbox, same limits), which may add
//! fields or skip a recipient, and checks at `check` time, with rhai's strict-variables mode,
//! that every name a template uses is a field the recipient list (or the script) provides.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};

use super::dates::DateTime;

/// How long one expression may run before it is stopped.
const TIME_LIMIT: Duration = Duration::from_secs(2);
const MAX_OPERATIONS: u64 = 200_000;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The template text itself is wrong (unclosed `{{`, bad expression).
    Syntax,
    /// The expression names a field that the recipient does not have.
    UnknownField(String),
    /// The expression ran out of its operation, size or time allowance.
    Limit,
    /// Anything else the expression did wrong at run time.
    Runtime,
}

/// An error in a template, located in the file, with the recipient whose fields caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}, line {line}, column {column}: {message}{}", recipient.as_ref().map(|r| format!(" (recipient {r})")).unwrap_or_default())]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub kind: TemplateErrorKind,
    pub recipient: Option<String>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    /// An index into `Template::exprs`.
    Expr(usize),
}

#[derive(Debug, Clone)]
struct Expr {
    ast: rhai::AST,
    /// The expression's text, kept for the strict check of field names.
    source: String,
    line: usize,
    column: usize,
    escape: bool,
    /// Where the expression's value is kept while one recipient's message renders.
    /// Expressions with the same text share a slot when they cannot have side effects (a field,
    /// or a helper applied to a field): `{{ city }}` written 75 times is looked up once.
    slot: usize,
    pure: Option<PureExpr>,
}

/// A compiled personalization script.
#[derive(Debug, Clone)]
pub struct Script {
    name: String,
    ast: rhai::AST,
    source: String,
    /// The variables the script declares at its top level (`let x = …`): new fields.
    defines: Vec<String>,
}

impl Script {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The new fields the script declares with a top-level `let` or `const`.
    pub fn defines(&self) -> &[String] {
        &self.defines
    }
}

/// What a personalization script decided for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// Render and send, with whatever fields the script set.
    Continue,
    /// Do not send: the script called `skip(reason)`.
    Skip(String),
}

/// The value `skip(reason)` throws to stop a script; recognised when the script ends.
#[derive(Debug, Clone)]
struct SkipSignal(String);

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    parts: Vec<Part>,
    exprs: Vec<Expr>,
    slots: usize,
}

impl Template {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template's own text, piece by piece, as [`Layout`] numbers them.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Text(text) => Some(text.as_str()),
            Part::Expr(_) => None,
        })
    }

    /// A plain-text template made from this HTML template by `to_text` (which turns HTML into
    /// readable text) run once, on the template itself, instead of on every recipient's
    /// rendered HTML. Each expression is stood in for by a private-use character naming its
    /// slot, which the conversion keeps as text; the derived template then shows the same
    /// values, unescaped. None when that would not give what the conversion of the rendered
    /// HTML gives: a raw `{{{ }}}` may insert markup, and the template must not use the
    /// stand-in characters itself.
    /// `tidy` is the conversion's last step (trimming lines, dropping extra blank lines), run
    /// again on a recipient's text when a value could change what it does: an empty value, or
    /// one that starts or ends with white space.
    pub fn derive_text(
        &self,
        to_text: impl Fn(&str) -> String,
        tidy: fn(&str) -> String,
    ) -> Option<DerivedText> {
        if self.slots > STAND_IN_COUNT || self.exprs.iter().any(|expr| !expr.escape) {
            return None;
        }
        let mut source = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) if text.chars().any(is_stand_in) => return None,
                Part::Text(text) => source.push_str(text),
                Part::Expr(index) => source.push(stand_in(self.exprs.get(*index)?.slot)?),
            }
        }
        if !stand_ins_are_neutral(&source) {
            return None;
        }
        let text = to_text(&source);
        let mut parts = Vec::new();
        let mut literal = String::new();
        for c in text.chars() {
            match stand_in_slot(c) {
                Some(slot) => {
                    if !literal.is_empty() {
                        parts.push(DerivedPart::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(DerivedPart::Value(slot));
                }
                None => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(DerivedPart::Text(literal));
        }
        Some(DerivedText { parts, tidy })
    }
}

/// The first of the Unicode private-use characters that stand in for expressions while a text
/// template is derived from an HTML one; no text of a message has a use for them.
const STAND_IN_FIRST: u32 = 0xE000;
const STAND_IN_COUNT: usize = 0x1900;

fn stand_in(slot: usize) -> Option<char> {
    if slot >= STAND_IN_COUNT {
        return None;
    }
    char::from_u32(STAND_IN_FIRST + slot as u32)
}

fn stand_in_slot(c: char) -> Option<usize> {
    let code = u32::from(c);
    (STAND_IN_FIRST..STAND_IN_FIRST + STAND_IN_COUNT as u32)
        .contains(&code)
        .then(|| (code - STAND_IN_FIRST) as usize)
}

fn is_stand_in(c: char) -> bool {
    stand_in_slot(c).is_some()
}

/// Whether the conversion of the page can treat each value as plain text whatever it is. An
/// escaped value never adds a tag, but with the text around it, it could still complete a
/// comment marker (`<!-` and `-`), an entity (`&am` and `p;`), or decide how a link is shown
/// (an `href` starting `#` or `mailto:` is shown differently). Around such spots the text is
/// derived from each recipient's page instead.
fn stand_ins_are_neutral(source: &str) -> bool {
    const HREF_PREFIX: usize = "mailto:".len();
    // One pass, remembering the last tag opened and whether a link is open, so that a large
    // template with many values costs no more than a read.
    let mut tag_start: Option<usize> = None;
    let mut link_label = false;
    for (at, c) in source.char_indices() {
        // Tags as the conversion reads them: from a `<` to the first `>` after it.
        match c {
            '<' if tag_start.is_none() => tag_start = Some(at),
            '>' => {
                if let Some(start) = tag_start.take() {
                    let tag = &source[start + 1..at];
                    let name = tag
                        .trim_start_matches('/')
                        .split(|c: char| c.is_whitespace() || c == '/')
                        .next()
                        .unwrap_or("");
                    if name.eq_ignore_ascii_case("a") {
                        link_label = !tag.starts_with('/');
                    }
                }
            }
            _ => {}
        }
        if !is_stand_in(c) {
            continue;
        }
        let before = &source[..at];
        let after = &source[at + c.len_utf8()..];
        // An escaped value holds no `>`, so a comment marker it completes ends before it
        // (`<!-`) or starts right after it (`-->`).
        if before.ends_with(['<', '!', '&']) || before.ends_with("<!-") || after.starts_with('>') {
            return false;
        }
        // An entity begun before the value: "&" with no ";" or space since.
        for c in before.chars().rev().take(10) {
            if c == ';' || c.is_whitespace() {
                break;
            }
            if c == '&' {
                return false;
            }
        }
        // A value in a link's label: whether the address is shown beside the label depends on
        // whether they are equal.
        if link_label && tag_start.is_none() {
            return false;
        }
        // A value near the start of an href, in the same tag.
        if let Some(start) = tag_start {
            let tag = before[start..].to_ascii_lowercase();
            if let Some(href) = tag.rfind("href") {
                let value = tag[href + 4..].trim_start();
                let value = value.strip_prefix('=').unwrap_or(value).trim_start();
                let value = value.trim_start_matches(['"', '\'']);
                if value.chars().count() < HREF_PREFIX {
                    return false;
                }
            }
        }
    }
    true
}

/// How a rendered text was pieced together: which stretches are the template's own text (by
/// number, in the order of [`Template::literals`]) and which are values. The MIME encoder uses
/// it to copy the template's text encoded once per campaign instead of encoding it again for
/// every recipient, and to encode a value that recurs only once per message.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Where each piece ends, and what it is.
    pieces: Vec<(usize, Piece)>,
}

/// A stretch of a rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The template's own text, by number.
    Literal(usize),
    /// A value; pieces with the same number hold the same text within one rendering.
    Value(usize),
    /// Anything else: a value shaped by what precedes it, or text changed around one.
    Other,
}

impl Layout {
    fn push(&mut self, end: usize, piece: Piece) {
        self.pieces.push((end, piece));
    }

    /// The pieces of `text` (the text this layout was made with), in order.
    pub fn pieces<'a>(&'a self, text: &'a str) -> impl Iterator<Item = (&'a str, Piece)> {
        let mut start = 0;
        self.pieces.iter().map(move |&(end, piece)| {
            let text = text.get(start..end).unwrap_or("");
            start = end;
            (text, piece)
        })
    }
}

/// An HTML body and the text body derived from it, rendered together.
pub struct RenderedBody {
    pub html: String,
    pub html_layout: Layout,
    pub text: String,
    /// None when the text had to be tidied after the values went in.
    pub text_layout: Option<Layout>,
}

/// A plain-text template derived from an HTML template (see [`Template::derive_text`]).
#[derive(Debug, Clone)]
pub struct DerivedText {
    parts: Vec<DerivedPart>,
    tidy: fn(&str) -> String,
}

impl DerivedText {
    /// The derived template's own text, piece by piece, as [`Layout`] numbers them.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            DerivedPart::Text(text) => Some(text.as_str()),
            DerivedPart::Value(_) => None,
        })
    }
}

#[derive(Debug, Clone)]
enum DerivedPart {
    Text(String),
    /// The value in this slot of the HTML template.
    Value(usize),
}

/// The variables one recipient's templates see.
pub struct Variables {
    scope: Scope<'static>,
}

impl Variables {
    pub fn new<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Variables {
        let mut scope = Scope::new();
        for (name, value) in fields {
            // Not constants: a personalization script may rewrite a field (`city = title(city)`).
            scope.push(name.to_string(), value.to_string());
        }
        Variables { scope }
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.scope.set_or_push(name.to_string(), value.to_string());
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.scope
            .get_value::<rhai::ImmutableString>(name)
            .map(|value| value.to_string())
    }
}

/// The sandboxed rhai engine shared by every template of a campaign.
pub struct TemplateEngine {
    engine: Engine,
}

impl Default for TemplateEngine {
    fn default() -> Self {
        TemplateEngine::new()
    }
}

impl TemplateEngine {
    pub fn new() -> TemplateEngine {
        TemplateEngine {
            engine: sandboxed_engine(false),
        }
    }

    /// Compiles `source`; `name` is how errors refer to it (a file name or "subject").
    pub fn compile(&self, name: &str, source: &str, html: bool) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut exprs: Vec<Expr> = Vec::new();
        let mut slots = 0;
        let mut rest = source;
        let mut line = 1;
        let mut column = 1;
        let syntax = |line, column, message: String| TemplateError {
            template: name.to_string(),
            line,
            column,
            message,
            kind: TemplateErrorKind::Syntax,
            recipient: None,
        };
        while let Some(start) = rest.find("{{") {
            let (text, tail) = rest.split_at(start);
            if !text.is_empty() {
                parts.push(Part::Text(text.to_string()));
            }
            advance(&mut line, &mut column, text);
            let raw = tail.starts_with("{{{");
            let open = if raw { 3 } else { 2 };
            let body = &tail[open..];
            let Some(end) = expression_end(body) else {
                return Err(syntax(
                    line,
                    column,
                    format!("\"{}\" is never closed", &tail[..open]),
                ));
            };
            let expression = &body[..end];
            let close = if raw { "}}}" } else { "}}" };
            if !body[end..].starts_with(close) {
                return Err(syntax(
                    line,
                    column,
                    format!("\"{}\" must be closed by \"{close}\"", &tail[..open]),
                ));
            }
            let (expr_line, expr_column) = (line, column + open);
            if expression.trim().is_empty() {
                return Err(syntax(line, column, "empty \"{{ }}\"".to_string()));
            }
            let ast = self.engine.compile(expression).map_err(|error| {
                let (l, c) = locate(expr_line, expr_column, error.position());
                syntax(l, c, error.err_type().to_string())
            })?;
            let pure = PureExpr::parse(expression);
            let shared = exprs
                .iter()
                .find(|other| pure.is_some() && other.source.trim() == expression.trim())
                .map(|other| other.slot);
            let slot = shared.unwrap_or_else(|| {
                slots += 1;
                slots - 1
            });
            parts.push(Part::Expr(exprs.len()));
            exprs.push(Expr {
                ast,
                source: expression.to_string(),
                line: expr_line,
                column: expr_column,
                escape: html && !raw,
                slot,
                pure,
            });
            let consumed = &tail[..open + end + close.len()];
            advance(&mut line, &mut column, consumed);
            rest = &tail[open + end + close.len()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            name: name.to_string(),
            parts,
            exprs,
            slots,
        })
    }

    /// Renders `template` with `variables`; `recipient` names whose fields they are, for errors.
    pub fn render(
        &self,
        template: &Template,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<String, TemplateError> {
        self.render_laid_out(template, variables, recipient)
            .map(|(text, _)| text)
    }

    /// Renders `template`, with the layout of the result.
    pub fn render_laid_out(
        &self,
        template: &Template,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<(String, Layout), TemplateError> {
        let values = self.evaluate(template, variables, recipient)?;
        let mut layout = Layout::default();
        let text = assemble(template, &values, &mut layout);
        Ok((text, layout))
    }

    /// Renders an HTML template and the text template derived from it, evaluating each
    /// expression once for both.
    pub fn render_with_text(
        &self,
        template: &Template,
        text: &DerivedText,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<RenderedBody, TemplateError> {
        let values = self.evaluate(template, variables, recipient)?;
        let mut html_layout = Layout::default();
        let html = assemble(template, &values, &mut html_layout);
        // Most values go in as they are; only those with white space to fold need a look at
        // what precedes them.
        let plain: Vec<bool> = values.iter().map(|value| is_plain_text(value)).collect();
        let untidy = values
            .iter()
            .any(|value| value.is_empty() || value.trim() != value);
        let mut out = String::with_capacity(html.len() / 2);
        let mut layout = Layout::default();
        let mut literal = 0;
        for part in &text.parts {
            match part {
                DerivedPart::Text(text) => {
                    // A space the conversion kept next to the stand-in goes when the value
                    // already ends with one: runs of white space are one space in the text.
                    match text.strip_prefix(' ') {
                        Some(rest) if out.ends_with(' ') => {
                            out.push_str(rest);
                            layout.push(out.len(), Piece::Other);
                        }
                        _ => {
                            out.push_str(text);
                            layout.push(out.len(), Piece::Literal(literal));
                        }
                    }
                    literal += 1;
                }
                DerivedPart::Value(slot) => {
                    let value = values.get(*slot).map_or("", String::as_str);
                    if plain.get(*slot).copied().unwrap_or(false) {
                        out.push_str(value);
                        layout.push(out.len(), Piece::Value(*slot));
                    } else {
                        push_as_text(&mut out, value);
                        layout.push(out.len(), Piece::Other);
                    }
                }
            }
        }
        let (text, text_layout) = if untidy {
            ((text.tidy)(&out), None)
        } else {
            (out, Some(layout))
        };
        Ok(RenderedBody {
            html,
            html_layout,
            text,
            text_layout,
        })
    }

    /// The value of each of the template's slots, unescaped, evaluating expressions in order.
    fn evaluate(
        &self,
        template: &Template,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<Vec<String>, TemplateError> {
        let mut values: Vec<Option<String>> = vec![None; template.slots];
        for expr in &template.exprs {
            let Some(value) = values.get_mut(expr.slot) else {
                continue;
            };
            if value.is_some() {
                continue;
            }
            // `{{ name }}` and `{{ url(name) }}` are most of a template: answered without the
            // interpreter when the field holds text.
            if let Some(text) = expr.pure.as_ref().and_then(|pure| pure.value(variables)) {
                *value = Some(text);
                continue;
            }
            DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + TIME_LIMIT)));
            let result = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut variables.scope, &expr.ast);
            DEADLINE.with(|deadline| deadline.set(None));
            let result = result.map_err(|error| {
                runtime_error(&template.name, expr.line, expr.column, &error, recipient)
            })?;
            *value = Some(if result.is_unit() {
                String::new()
            } else {
                result.to_string()
            });
        }
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// The template's text with the values in place, escaped where the template asks for it.
fn assemble(template: &Template, values: &[String], layout: &mut Layout) -> String {
    let mut escaped: Vec<Option<String>> = vec![None; values.len()];
    let mut size = 0;
    for part in &template.parts {
        size += match part {
            Part::Text(text) => text.len(),
            Part::Expr(index) => match template.exprs.get(*index) {
                Some(expr) => {
                    let value = values.get(expr.slot).map_or("", String::as_str);
                    match escaped.get_mut(expr.slot) {
                        Some(cached) if expr.escape => {
                            cached.get_or_insert_with(|| escape_html(value)).len()
                        }
                        _ => value.len(),
                    }
                }
                None => 0,
            },
        };
    }
    let mut out = String::with_capacity(size);
    let mut literal = 0;
    for part in &template.parts {
        match part {
            Part::Text(text) => {
                out.push_str(text);
                layout.push(out.len(), Piece::Literal(literal));
                literal += 1;
            }
            Part::Expr(index) => {
                let Some(expr) = template.exprs.get(*index) else {
                    continue;
                };
                let value = values.get(expr.slot).map_or("", String::as_str);
                // Escaped and raw forms of a slot are different texts.
                match escaped.get(expr.slot) {
                    Some(Some(cached)) if expr.escape => out.push_str(cached),
                    _ => out.push_str(value),
                }
                layout.push(
                    out.len(),
                    Piece::Value(expr.slot * 2 + usize::from(expr.escape)),
                );
            }
        }
    }
    out
}

/// Whether a value goes into derived text as it is: no white space but single spaces inside.
fn is_plain_text(value: &str) -> bool {
    !value.starts_with(char::is_whitespace)
        && !value.contains(|c: char| c.is_whitespace() && c != ' ')
        && !value.contains("  ")
}

/// Appends a value where HTML made into text has it: whitespace runs become one space, as the
/// conversion of a rendered page would make them.
fn push_as_text(out: &mut String, value: &str) {
    for c in value.chars() {
        if c == '\u{a0}' {
            out.push(' ');
        } else if c.is_whitespace() {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

impl TemplateEngine {
    /// Compiles a personalization script; `name` is its file name, for errors.
    pub fn compile_script(&self, name: &str, source: &str) -> Result<Script, TemplateError> {
        let ast = self.engine.compile(source).map_err(|error| {
            let (line, column) = locate(1, 1, error.position());
            TemplateError {
                template: name.to_string(),
                line,
                column,
                message: error.err_type().to_string(),
                kind: TemplateErrorKind::Syntax,
                recipient: None,
            }
        })?;
        Ok(Script {
            name: name.to_string(),
            ast,
            source: source.to_string(),
            defines: top_level_declarations(source),
        })
    }

    /// Runs the script with one recipient's fields; the variables it declares or changes stay in
    /// `variables` for the templates.
    pub fn run_script(
        &self,
        script: &Script,
        variables: &mut Variables,
        recipient: &str,
    ) -> Result<ScriptOutcome, TemplateError> {
        DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + TIME_LIMIT)));
        let result = self
            .engine
            .run_ast_with_scope(&mut variables.scope, &script.ast);
        DEADLINE.with(|deadline| deadline.set(None));
        match result {
            Ok(()) => Ok(ScriptOutcome::Continue),
            Err(error) => match skip_reason(&error) {
                Some(reason) => Ok(ScriptOutcome::Skip(reason)),
                None => Err(runtime_error(&script.name, 1, 1, &error, recipient)),
            },
        }
    }

    /// Checks, without any recipient, that every variable `template` uses is one of `known`
    /// (rhai's strict-variables mode at compile time), so a misspelt field is found even in a
    /// branch no recipient takes. Returns every unknown name with where it is.
    pub fn check_names(&self, template: &Template, known: &[String]) -> Vec<TemplateError> {
        let strict = sandboxed_engine(true);
        let scope = known_scope(known);
        let mut errors = Vec::new();
        for expr in &template.exprs {
            if let Err(error) = strict.compile_with_scope(&scope, &expr.source) {
                errors.push(strict_error(&template.name, expr.line, expr.column, &error));
            }
        }
        errors
    }

    /// The same check for a personalization script.
    pub fn check_script_names(&self, script: &Script, known: &[String]) -> Vec<TemplateError> {
        let strict = sandboxed_engine(true);
        match strict.compile_with_scope(&known_scope(known), &script.source) {
            Ok(_) => Vec::new(),
            Err(error) => vec![strict_error(&script.name, 1, 1, &error)],
        }
    }
}

fn known_scope(known: &[String]) -> Scope<'static> {
    let mut scope = Scope::new();
    for name in known {
        scope.push(name.clone(), String::new());
    }
    scope
}

fn strict_error(name: &str, line: usize, column: usize, error: &rhai::ParseError) -> TemplateError {
    let (l, c) = locate(line, column, error.position());
    let (kind, message) = match error.err_type() {
        rhai::ParseErrorType::VariableUndefined(field) => (
            TemplateErrorKind::UnknownField(field.clone()),
            format!("there is no field named \"{field}\""),
        ),
        other => (TemplateErrorKind::Syntax, other.to_string()),
    };
    TemplateError {
        template: name.to_string(),
        line: l,
        column: c,
        message,
        kind,
        recipient: None,
    }
}

/// The reason of a `skip(…)` call, however deep in the script's functions it was made.
fn skip_reason(error: &EvalAltResult) -> Option<String> {
    match error {
        EvalAltResult::ErrorRuntime(value, _) => value
            .clone()
            .try_cast::<SkipSignal>()
            .map(|SkipSignal(reason)| reason),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => skip_reason(inner),
        _ => None,
    }
}

/// Names declared by `let`/`const` at the top level of a script (brace depth 0, outside
/// strings and comments): the fields a script adds. A scan, not a parse: good enough to tell
/// the strict check which names exist, and it can only err towards accepting a name.
fn top_level_declarations(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    let mut at_word_start = true;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' | b'`' | b'\'' => {
                index += 1;
                while let Some(&inner) = bytes.get(index) {
                    if inner == b'\\' {
                        index += 1;
                    } else if inner == byte {
                        break;
                    }
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while bytes.get(index).is_some_and(|b| *b != b'\n') {
                    index += 1;
                }
            }
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ if depth == 0 && at_word_start => {
                let rest = source.get(index..).unwrap_or("");
                for keyword in ["let ", "const "] {
                    if let Some(after) = rest.strip_prefix(keyword) {
                        let name: String = after
                            .trim_start()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
            }
            _ => {}
        }
        at_word_start = !bytes
            .get(index)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        index += 1;
    }
    names
}

/// The sandbox: no modules, no eval, no output, limits on work, depth, sizes and time.
fn sandboxed_engine(strict: bool) -> Engine {
    let mut engine = Engine::new();
    engine.set_strict_variables(strict);

    // No `import`: modules could read files.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(32);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(1 << 20);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(10_000);
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.on_progress(|operations| {
        if operations % 1_024 != 0 {
            return None;
        }
        let expired =
            DEADLINE.with(|deadline| deadline.get().is_some_and(|at| Instant::now() > at));
        expired.then(|| Dynamic::from("time limit"))
    });
    register_helpers(&mut engine);
    engine
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A helper that computes its value from its argument alone.
#[derive(Debug, Clone, Copy)]
enum PureHelper {
    Url,
    Html,
    Upper,
    Lower,
    Title,
}

/// An expression that is a field, or a pure helper applied to a field: its value depends on the
/// field alone, so it is computed without the interpreter, and once however often the template
/// repeats it.
#[derive(Debug, Clone)]
struct PureExpr {
    helper: Option<PureHelper>,
    field: String,
}

impl PureExpr {
    fn parse(source: &str) -> Option<PureExpr> {
        let source = source.trim();
        let (helper, field) = match source.split_once('(') {
            Some((helper, rest)) => {
                let helper = match helper.trim() {
                    "url" => PureHelper::Url,
                    "html" => PureHelper::Html,
                    "upper" => PureHelper::Upper,
                    "lower" => PureHelper::Lower,
                    "title" => PureHelper::Title,
                    _ => return None,
                };
                (Some(helper), rest.strip_suffix(')')?.trim())
            }
            None => (None, source),
        };
        is_identifier(field).then(|| PureExpr {
            helper,
            field: field.to_string(),
        })
    }

    /// The value for a field that holds text; None sends the expression to rhai (which also
    /// reports an unknown field properly).
    fn value(&self, variables: &Variables) -> Option<String> {
        let field = variables.scope.get(&self.field)?;
        let value = field.read_lock::<rhai::ImmutableString>()?;
        Some(match self.helper {
            None => value.to_string(),
            Some(PureHelper::Url) => url_encode(&value),
            Some(PureHelper::Html) => escape_html(&value),
            Some(PureHelper::Upper) => value.to_uppercase(),
            Some(PureHelper::Lower) => value.to_lowercase(),
            Some(PureHelper::Title) => title_case(&value),
        })
    }
}

/// Finds the `}}` that closes an expression, skipping braces inside the expression's own blocks
/// and string literals (`{{ if x { "a" } else { "}}" } }}` is one expression).
fn expression_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match quote {
            Some(q) => {
                if byte == b'\\' {
                    index += 1;
                } else if byte == q {
                    quote = None;
                }
            }
            None => match byte {
                b'"' | b'`' | b'\'' => quote = Some(byte),
                b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(index + 1) == Some(&b'}') => return Some(index),
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        index += 1;
    }
    None
}

fn advance(line: &mut usize, column: &mut usize, text: &str) {
    for c in text.chars() {
        if c == '\n' {
            *line += 1;
            *column = 1;
        } else {
            *column += 1;
        }
    }
}

/// Maps a position inside an expression to the template's line and column.
fn locate(line: usize, column: usize, position: Position) -> (usize, usize) {
    match (position.line(), position.position()) {
        (Some(1), Some(c)) => (line, column + c - 1),
        (Some(l), Some(c)) => (line + l - 1, c),
        _ => (line, column),
    }
}

fn runtime_error(
    template: &str,
    line: usize,
    column: usize,
    error: &EvalAltResult,
    recipient: &str,
) -> TemplateError {
    // An error inside a function the expression or script defines is reported where it
    // happened, naming the function, rather than at the call.
    let mut error = error;
    let mut function = None;
    while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = error {
        if inner.position().is_none() {
            break;
        }
        function.get_or_insert_with(|| name.clone());
        error = inner;
    }
    let (l, c) = locate(line, column, error.position());
    let (kind, message) = match error {
        EvalAltResult::ErrorVariableNotFound(name, _) => (
            TemplateErrorKind::UnknownField(name.clone()),
            format!("there is no field named \"{name}\""),
        ),
        EvalAltResult::ErrorTooManyOperations(_) => (
            TemplateErrorKind::Limit,
            "the expression runs too long (it was stopped; is there an endless loop?)".to_string(),
        ),
        EvalAltResult::ErrorTerminated(_, _) => (
            TemplateErrorKind::Limit,
            "the expression took more than 2 seconds and was stopped".to_string(),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => (
            TemplateErrorKind::Limit,
            format!("the expression built too large a value ({what})"),
        ),
        EvalAltResult::ErrorStackOverflow(_) | EvalAltResult::ErrorTooManyModules(_) => (
            TemplateErrorKind::Limit,
            "the expression nests or recurses too deeply".to_string(),
        ),
        other => (
            TemplateErrorKind::Runtime,
            // rhai appends the position, which the error names already, and may use several
            // lines; an error log wants one.
            other
                .to_string()
                .split(" (line ")
                .next()
                .unwrap_or_default()
                .replace('\n', " "),
        ),
    };
    let message = match function {
        Some(name) => format!("{message} (in function \"{name}\")"),
        None => message,
    };
    TemplateError {
        template: template.to_string(),
        line: l,
        column: c,
        message,
        kind,
        recipient: Some(recipient.to_string()),
    }
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_html_into(text, &mut out);
    out
}

fn escape_html_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for values placed in URLs.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        at_word_start = c.is_whitespace() || c == '-';
    }
    out
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn script_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message),
        Position::NONE,
    ))
}

fn skip_with(reason: &str) -> Fallible<()> {
    let reason = reason.trim();
    let reason = if reason.is_empty() {
        "skipped by the script".to_string()
    } else {
        reason.to_string()
    };
    Err(Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(SkipSignal(reason)),
        Position::NONE,
    )))
}

/// `format_date(signup_date, "%d %B %Y")`; an empty value gives an empty text (so
/// `or(format_date(d, "%Y"), "soon")` works), anything else that is not a date is an error.
fn format_date(value: &str, pattern: &str) -> Fallible<String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let Some(date) = DateTime::parse(value) else {
        return Err(script_error(format!(
            "\"{value}\" is not a date like 2024-03-05 (format_date)"
        )));
    };
    date.format(pattern).map_err(script_error)
}

fn register_helpers(engine: &mut Engine) {
    // Today's date (UTC) in the given format: `date("%Y-%m-%d")`.
    engine.register_fn("date", |pattern: &str| -> Fallible<String> {
        DateTime::now_utc().format(pattern).map_err(script_error)
    });
    engine.register_fn("format_date", format_date);
    // `skip("reason")` in the personalization script: this recipient gets no message.
    engine.register_fn("skip", skip_with);
    engine.register_fn("skip", || skip_with(""));
    engine.register_fn("upper", |text: &str| text.to_uppercase());
    engine.register_fn("lower", |text: &str| text.to_lowercase());
    engine.register_fn("title", title_case);
    engine.register_fn("url", url_encode);
    engine.register_fn("html", escape_html);
    // `or(first_name, "friend")`: a fallback for empty fields.
    engine.register_fn("or", |value: &str, fallback: &str| {
        if value.trim().is_empty() {
            fallback.to_string()
        } else {
            value.to_string()
        }
    });
}

/// The template text that inserts field `name`: `{{ name }}`, or, with a fallback for the
/// recipients whose value is empty, `{{ or(name, "there") }}` (the fallback written as a rhai
/// string, quotes and backslashes escaped). What the window's "Insert field" writes.
pub fn field_expression(name: &str, fallback: &str) -> String {
    if fallback.is_empty() {
        return format!("{{{{ {name} }}}}");
    }
    let mut literal = String::with_capacity(fallback.len() + 2);
    literal.push('"');
    for c in fallback.chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            c => literal.push(c),
        }
    }
    literal.push('"');
    format!("{{{{ or({name}, {literal}) }}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_field_falls_back_where_the_value_is_empty() {
        assert_eq!(field_expression("city", ""), "{{ city }}");
        assert_eq!(
            field_expression("first_name", "there"),
            "{{ or(first_name, \"there\") }}"
        );
        check(
            &field_expression("empty", "dear \"reader\" \\o/"),
            "dear &quot;reader&quot; \\o/",
        );
        check(&field_expression("first_name", "there"), "Ada");
    }

    fn render(source: &str, html: bool, fields: &[(&str, &str)]) -> Result<String, TemplateError> {
        let engine = TemplateEngine::new();
        let template = engine.compile("t.html", source, html)?;
        let mut variables = Variables::new(fields.iter().copied());
        engine.render(&template, &mut variables, "a@x.example")
    }

    fn check(source: &str, expected: &str) {
        let fields = [
            ("first_name", "Ada"),
            ("city", "Paris"),
            ("empty", ""),
            ("tag", "<b>"),
        ];
        assert_eq!(render(source, true, &fields).unwrap(), expected, "{source}");
    }

    #[test]
    fn renders_expressions() {
        check("Hello {{ first_name }}!", "Hello Ada!");
        check("{{first_name}}{{city}}", "AdaParis");
        check(
            "{{ if city == \"Paris\" { \"Bonjour\" } else { \"Hello\" } }}",
            "Bonjour",
        );
        check("{{ if city == \"Rome\" { \"}}\" } else { \"ok\" } }}", "ok");
        check("{{ upper(first_name) }} {{ lower(city) }}", "ADA paris");
        check(
            "{{ or(empty, \"friend\") }} {{ or(first_name, \"friend\") }}",
            "friend Ada",
        );
        check("{{ title(\"jean-luc picard\") }}", "Jean-Luc Picard");
        check("{{ url(\"a b&c\") }}", "a%20b%26c");
        check("{{ tag }} {{{ tag }}}", "&lt;b&gt; <b>");
        check("{{ 40 + 2 }}", "42");
        check("no expressions at all", "no expressions at all");
        check("{ single } braces", "{ single } braces");
    }

    #[test]
    fn text_templates_do_not_escape() {
        assert_eq!(
            render("{{ tag }}", false, &[("tag", "<b>")]).unwrap(),
            "<b>"
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let error = render("line one\nline two {{ first_name +  }}", true, &[]).unwrap_err();
        assert_eq!((error.template.as_str(), error.line), ("t.html", 2));
        assert_eq!(error.kind, TemplateErrorKind::Syntax);
        let unclosed = render("a\nb {{ first_name", true, &[]).unwrap_err();
        assert_eq!((unclosed.line, unclosed.column), (2, 3));
        assert!(unclosed.message.contains("never closed"));
    }

    #[test]
    fn unknown_fields_name_the_field_and_recipient() {
        let error = render("Hi\n  {{ frist_name }}", true, &[("first_name", "Ada")]).unwrap_err();
        assert_eq!(
            error.kind,
            TemplateErrorKind::UnknownField("frist_name".into())
        );
        assert_eq!((error.line, error.column), (2, 6));
        let message = error.to_string();
        assert!(
            message.contains("frist_name") && message.contains("a@x.example"),
            "{message}"
        );
    }

    #[test]
    fn runaway_expressions_fail_fast() {
        let started = Instant::now();
        for source in [
            "{{ loop { } }}",
            "{{ let s = \"x\"; loop { s += s; } }}",
            "{{ fn f(n) { f(n + 1) } f(0) }}",
            "{{ let a = []; loop { a.push(1); } }}",
        ] {
            let error = render(source, true, &[]).unwrap_err();
            assert_eq!(error.kind, TemplateErrorKind::Limit, "{source}: {error}");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn script_errors_name_the_line_where_they_happen() {
        let engine = TemplateEngine::new();
        for (source, line, column, words) in [
            ("let a = 1;\nlet b = nope + 1;\n", 2, 9, "nope"),
            ("let a = 1;\n\nlet b = a.foo();\n", 3, 11, "foo"),
            (
                "fn f(x) {\n  x + nope\n}\nlet a = 1;\nf(a);\n",
                2,
                7,
                "in function \"f\"",
            ),
        ] {
            let script = engine.compile_script("p.rhai", source).unwrap();
            let mut variables = Variables::new([("x", "1")]);
            let error = engine
                .run_script(&script, &mut variables, "r@x.example")
                .unwrap_err();
            assert_eq!(
                (error.line, error.column),
                (line, column),
                "{source}: {error}"
            );
            let message = error.to_string();
            assert!(
                message.contains(words)
                    && message.contains("r@x.example")
                    && !message.contains('\n'),
                "{message}"
            );
        }
    }

    #[test]
    fn no_file_or_module_access() {
        assert!(render("{{ import \"std\" as s; 1 }}", true, &[]).is_err());
        assert!(render("{{ eval(\"1\") }}", true, &[]).is_err());
    }

    #[test]
    fn random_templates_never_panic() {
        let pieces = [
            "{{", "}}", "{{{", "}}}", "{", "}", "\"", "x", " ", "\n", "loop", "+", "if", "é", "'",
            "`", "\\", "1",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let engine = TemplateEngine::new();
        for _ in 0..2_000 {
            let mut source = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for step in 0..(seed % 12) {
                let index = ((seed >> (step * 4)) as usize) % pieces.len();
                source.push_str(pieces[index]);
            }
            if let Ok(template) = engine.compile("fuzz", &source, true) {
                let mut variables = Variables::new([("x", "1")]);
                let _ = engine.render(&template, &mut variables, "fuzz@x.example");
            }
        }
    }
}
